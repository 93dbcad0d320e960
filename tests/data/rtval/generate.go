// Prints the config.json the OCI runtime-tools validation programs start from:
// runtime-tools' generate.New("linux") with the root at the bundle itself (".").
// Built by tests/support/rtval.py against Debian's golang-github-opencontainers-runtime-tools-dev.
package main

import (
	"os"

	"github.com/opencontainers/runtime-tools/generate"
)

func main() {
	g, err := generate.New("linux")
	if err != nil {
		panic(err)
	}
	g.SetRootPath(".")
	if err := g.Save(os.Stdout, generate.ExportOptions{}); err != nil {
		panic(err)
	}
}
