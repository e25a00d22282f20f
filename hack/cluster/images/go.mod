module github.com/switchboard-dev/switchboard/hack/cluster/images

go 1.26.0

require (
	github.com/google/go-containerregistry v0.22.1
	github.com/switchboard-dev/switchboard v0.0.0
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)

// The image layout comes from the main module (hack/cluster/imagespec), where
// a test keeps it equal to the Dockerfile's.
replace github.com/switchboard-dev/switchboard => ../../..
