// Package imagespec is the one description of the Switchboard image that the
// Docker-free image builder (hack/cluster/images) assembles with
// go-containerregistry. Its test parses the Dockerfile and compares, so the
// image a Docker build makes and the one the local cluster runs cannot drift
// apart: same files, same non-root user, same entrypoint, same labels.
//
// The package has no dependencies beyond the standard library, so the main
// module's test can check it cheaply, without building an image.
package imagespec

// NonrootUID is the UID (and GID) of distroless's "nonroot" user.
const NonrootUID = 65532

// Image is the part of an OCI image config and layout the Dockerfile decides.
type Image struct {
	// Binaries are the files copied to the root of the image, by base name.
	Binaries []string
	// User is the USER instruction, uid:gid.
	User string
	// Entrypoint is the ENTRYPOINT instruction (exec form).
	Entrypoint []string
	// Labels are the LABEL instructions.
	Labels map[string]string
	// Env and WorkingDir are what the base image (distroless static:nonroot) sets.
	Env        []string
	WorkingDir string
}

// Switchboard is the image of the Dockerfile: /manager and /switchboard on
// distroless static, running as nonroot.
func Switchboard() Image {
	return Image{
		Binaries:   []string{"manager", "switchboard"},
		User:       "65532:65532",
		Entrypoint: []string{"/manager"},
		Labels: map[string]string{
			"org.opencontainers.image.source":      "https://github.com/switchboard-dev/switchboard",
			"org.opencontainers.image.description": "Switchboard operator (/manager) and services (/switchboard)",
		},
		Env:        DistrolessEnv(),
		WorkingDir: "/home/nonroot",
	}
}

// DistrolessEnv is the environment distroless static sets.
func DistrolessEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
	}
}

// BaseFile is one file of the distroless-like base layer.
type BaseFile struct {
	Path string
	Mode int64
	Dir  bool
	Body string
	UID  int
}

// Base lists the files of a distroless static:nonroot-like base: the users
// and groups (root, nobody, nonroot), a sticky /tmp and nonroot's home. CA
// certificates are added by the builder from the host when present.
func Base() []BaseFile {
	return []BaseFile{
		{Path: "etc", Dir: true, Mode: 0o755},
		{Path: "etc/passwd", Mode: 0o644, Body: "root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
		{Path: "etc/group", Mode: 0o644, Body: "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n"},
		{Path: "etc/nsswitch.conf", Mode: 0o644, Body: "hosts: files dns\n"},
		{Path: "home", Dir: true, Mode: 0o755},
		{Path: "home/nonroot", Dir: true, Mode: 0o700, UID: NonrootUID},
		{Path: "root", Dir: true, Mode: 0o700},
		{Path: "tmp", Dir: true, Mode: 0o1777},
	}
}
