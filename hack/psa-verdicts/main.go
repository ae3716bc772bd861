// Command psa-verdicts runs upstream Pod Security Admission's checks (k8s.io/pod-security-admission,
// the library the API server embeds) on pods read as JSON lines from standard input, and prints
// one JSON line per pod: {"checks": {"<check id>": <allowed>, ...}} for the latest version of
// every check, or {"error": "..."} when the pod does not decode. Used by the CLI's differential
// test of PSS verdicts.
package main

import (
	"bufio"
	"encoding/json"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/policy"
)

type pod struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     corev1.PodSpec    `json:"spec"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	checks := policy.DefaultChecks()
	for in.Scan() {
		var p pod
		if err := json.Unmarshal(in.Bytes(), &p); err != nil {
			_ = out.Encode(map[string]string{"error": err.Error()})
			continue
		}
		verdicts := map[string]bool{}
		for _, check := range checks {
			latest := check.Versions[len(check.Versions)-1]
			result := latest.CheckPod(&p.Metadata, &p.Spec)
			verdicts[string(check.ID)] = result.Allowed
		}
		_ = out.Encode(map[string]interface{}{"checks": verdicts})
	}
}
