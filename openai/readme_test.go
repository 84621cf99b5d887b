package openai_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// TestREADMEDeployment parses the README's Kubernetes Deployment and checks
// that its probes use the handler's endpoints and its flags exist.
func TestREADMEDeployment(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)<!-- k8s-deployment -->\n```yaml\n(.*?)```").FindSubmatch(data)
	require.NotNil(t, m, "the README's k8s-deployment block")
	var d struct {
		Kind string `json:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args           []string `json:"args"`
						ReadinessProbe struct {
							HTTPGet struct {
								Path string `json:"path"`
							} `json:"httpGet"`
						} `json:"readinessProbe"`
						LivenessProbe struct {
							HTTPGet struct {
								Path string `json:"path"`
							} `json:"httpGet"`
						} `json:"livenessProbe"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	require.NoError(t, yaml.UnmarshalStrict(m[1], new(map[string]any)), "it must be valid YAML without duplicate keys")
	require.NoError(t, yaml.Unmarshal(m[1], &d))
	assert.Equal(t, "Deployment", d.Kind)
	require.Len(t, d.Spec.Template.Spec.Containers, 1)
	c := d.Spec.Template.Spec.Containers[0]
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	server, err := os.ReadFile("../cmd/vlm-server/main.go")
	require.NoError(t, err)
	for _, a := range c.Args {
		if strings.HasPrefix(a, "-") {
			assert.Contains(t, string(server), `"`+a[1:]+`"`, "flag %s exists in cmd/vlm-server", a)
		}
	}
}
