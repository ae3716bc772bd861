// Command kubectl-decode reads a manifest stream on standard input the way kubectl does
// (k8s.io/apimachinery's YAMLOrJSONDecoder: documents split on "---", each converted to JSON
// by sigs.k8s.io/yaml with go-yaml v2 typing) and prints one JSON line per document:
// {"ok": <the object>} or {"error": "<message>"}. Used by the CLI's differential tests.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/util/yaml"
)

func main() {
	decoder := yaml.NewYAMLOrJSONDecoder(bufio.NewReader(os.Stdin), 4096)
	out := json.NewEncoder(os.Stdout)
	for {
		var obj interface{}
		err := decoder.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			_ = out.Encode(map[string]string{"error": err.Error()})
			return
		}
		if err := out.Encode(map[string]interface{}{"ok": obj}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
