# Sourced by hack/envtest/build.sh and hack/cluster/build-components.sh: the
# one recipe for building Kubernetes components from Go modules.

# kubernetes_module DIR K8S_VERSION makes the Go module in DIR build
# k8s.io/kubernetes at K8S_VERSION (e.g. 1.37.2). k8s.io/kubernetes points its
# staging modules at ./staging/...; a consumer must replace each of them with
# the published version of the same release, v0.37.2.
kubernetes_module() {
  local dir=$1 version=$2 staging="v0.${2#1.}" gomod m
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "require k8s.io/kubernetes v${version}"
    echo "replace ("
    for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod"); do
      echo "	$m => $m $staging"
    done
    echo ")"
  } >>"$dir/go.mod"
  (cd "$dir" && go mod tidy >/dev/null)
}

# kubernetes_ldflags K8S_VERSION stamps the version into a component, or it
# reports v0.0.0 and the kubelet and the API server disagree about it.
kubernetes_ldflags() {
  local minor=${1#1.}
  minor=${minor%%.*}
  echo "-X k8s.io/component-base/version.gitVersion=v$1 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}"
}
