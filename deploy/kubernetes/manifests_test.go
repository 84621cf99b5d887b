// Package kubernetes holds vlm-server's Kubernetes manifests (the YAML
// files in this folder) and the tests that check them; it has no Go code
// of its own.
package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// doc is one YAML document of a manifest file.
type doc struct {
	file       string
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	raw        []byte
}

// docs reads every document of every manifest in this folder.
func docs(t *testing.T) []doc {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []doc
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
			if strings.TrimSpace(stripComments(part)) == "" {
				continue
			}
			d := doc{file: fmt.Sprintf("%s#%d", f, i), raw: []byte(part)}
			require.NoError(t, yaml.Unmarshal(d.raw, &d), d.file)
			require.NotEmpty(t, d.Kind, "%s: no kind", d.file)
			out = append(out, d)
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// strict decodes d into v, refusing fields v's type does not have (a typo
// Kubernetes would drop silently or reject).
func strict(t *testing.T, d doc, v any) {
	t.Helper()
	require.NoError(t, yaml.UnmarshalStrict(d.raw, v), d.file)
}

// manifests are the objects of the folder, decoded into their types.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	configMaps  []*corev1.ConfigMap
	pools       []*inferencePool
	routes      []*httpRoute
}

func load(t *testing.T) manifests {
	var m manifests
	for _, d := range docs(t) {
		switch d.APIVersion + " " + d.Kind {
		case "apps/v1 Deployment":
			v := &appsv1.Deployment{}
			strict(t, d, v)
			m.deployments = append(m.deployments, v)
		case "v1 Service":
			v := &corev1.Service{}
			strict(t, d, v)
			m.services = append(m.services, v)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			v := &autoscalingv2.HorizontalPodAutoscaler{}
			strict(t, d, v)
			m.hpas = append(m.hpas, v)
		case "v1 ConfigMap":
			v := &corev1.ConfigMap{}
			strict(t, d, v)
			m.configMaps = append(m.configMaps, v)
		case "inference.networking.k8s.io/v1 InferencePool":
			v := &inferencePool{}
			strict(t, d, v)
			m.pools = append(m.pools, v)
		case "gateway.networking.k8s.io/v1 HTTPRoute":
			v := &httpRoute{}
			strict(t, d, v)
			m.routes = append(m.routes, v)
		default:
			t.Fatalf("%s: %s %s: no test knows this kind", d.file, d.APIVersion, d.Kind)
		}
	}
	return m
}

// serverFlags are vlm-server's flag names, read from its source.
func serverFlags(t *testing.T) []string {
	src, err := os.ReadFile(filepath.Join("..", "..", "cmd", "vlm-server", "main.go"))
	require.NoError(t, err)
	var names []string
	for _, m := range regexp.MustCompile(`fs\.\w+\((?:\w+, )?"([a-z0-9-]+)"`).FindAllStringSubmatch(string(src), -1) {
		names = append(names, m[1])
	}
	require.Contains(t, names, "sequences", "vlm-server's flags not found in its source")
	require.Contains(t, names, "parallel", "the alias of -sequences")
	return names
}

func TestDeployments(t *testing.T) {
	m := load(t)
	require.Len(t, m.deployments, 2, "CPU and GPU")
	flags := serverFlags(t)
	for _, dep := range m.deployments {
		t.Run(dep.Name+"/"+dep.Labels["accelerator"], func(t *testing.T) {
			assert.Equal(t, "vlm-server", dep.Name, "both variants replace each other: one name for the Service, HPA and pool")
			sel := dep.Spec.Selector.MatchLabels
			require.NotEmpty(t, sel)
			for k, v := range sel {
				assert.Equal(t, v, dep.Spec.Template.Labels[k], "the selector matches the pod template")
			}
			require.Len(t, dep.Spec.Template.Spec.Containers, 1)
			c := dep.Spec.Template.Spec.Containers[0]
			port := containerPort(t, c, "http")
			assert.Equal(t, int32(8080), port)
			// Every argument is a vlm-server flag, and it listens on
			// every interface at the container port.
			for _, a := range c.Args {
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				assert.Contains(t, flags, name, "argument %q", a)
			}
			assert.Contains(t, c.Args, fmt.Sprintf("-addr=0.0.0.0:%d", port))
			// Probes: alive on /healthz, ready on /readyz (503 while draining).
			for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe} {
				require.NotNil(t, p)
				assert.Equal(t, "/healthz", p.HTTPGet.Path)
				assert.Equal(t, intstr.FromString("http"), p.HTTPGet.Port)
			}
			require.NotNil(t, c.ReadinessProbe)
			assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
			// The grace period outlasts the server's own shutdown timeout.
			grace := dep.Spec.Template.Spec.TerminationGracePeriodSeconds
			require.NotNil(t, grace)
			assert.Contains(t, c.Args, "-shutdown-timeout=30s")
			assert.Greater(t, *grace, int64(30))
			// The API key comes from a Secret, never the manifest.
			require.Len(t, c.Env, 1)
			assert.Equal(t, "VLM_API_KEY", c.Env[0].Name)
			require.NotNil(t, c.Env[0].ValueFrom)
			require.NotNil(t, c.Env[0].ValueFrom.SecretKeyRef)
			assert.False(t, c.Resources.Limits.Memory().IsZero(), "a memory limit")
			// Prometheus scrapes the metrics the endpoint picker reads.
			assert.Equal(t, "/metrics", dep.Spec.Template.Annotations["prometheus.io/path"])
			gpu := c.Resources.Limits[corev1.ResourceName("nvidia.com/gpu")]
			if dep.Labels["accelerator"] == "nvidia" {
				assert.Equal(t, int64(1), gpu.Value())
				assert.Contains(t, c.Args, "-ngl=-1")
			} else {
				assert.True(t, gpu.IsZero())
			}
		})
	}
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, name)
	return 0
}

func TestServiceAndPoolSelectThePods(t *testing.T) {
	m := load(t)
	require.Len(t, m.services, 1)
	require.Len(t, m.pools, 1)
	for _, dep := range m.deployments {
		pod := dep.Spec.Template.Labels
		for k, v := range m.services[0].Spec.Selector {
			assert.Equal(t, v, pod[k], "Service selector vs %s", dep.Name)
		}
		for k, v := range m.pools[0].Spec.Selector.MatchLabels {
			assert.Equal(t, v, pod[k], "InferencePool selector vs %s", dep.Name)
		}
		port := containerPort(t, dep.Spec.Template.Spec.Containers[0], "http")
		require.Len(t, m.pools[0].Spec.TargetPorts, 1)
		assert.Equal(t, port, m.pools[0].Spec.TargetPorts[0].Number, "the pool targets the server's port")
	}
	assert.Equal(t, intstr.FromString("http"), m.services[0].Spec.Ports[0].TargetPort)

	pool := m.pools[0]
	require.NotNil(t, pool.Spec.EndpointPickerRef)
	assert.NotEmpty(t, pool.Spec.EndpointPickerRef.Name)
	assert.Contains(t, []string{"", "FailOpen", "FailClose"}, pool.Spec.EndpointPickerRef.FailureMode)
	require.Len(t, m.routes, 1)
	ref := m.routes[0].Spec.Rules[0].BackendRefs[0]
	assert.Equal(t, "InferencePool", ref.Kind)
	assert.Equal(t, "inference.networking.k8s.io", ref.Group)
	assert.Equal(t, pool.Name, ref.Name)
}

func TestHPAScalesTheDeploymentOnItsQueue(t *testing.T) {
	m := load(t)
	require.Len(t, m.hpas, 1)
	h := m.hpas[0]
	assert.Equal(t, "Deployment", h.Spec.ScaleTargetRef.Kind)
	assert.Equal(t, m.deployments[0].Name, h.Spec.ScaleTargetRef.Name)
	require.NotNil(t, h.Spec.MinReplicas)
	assert.LessOrEqual(t, *h.Spec.MinReplicas, h.Spec.MaxReplicas)
	require.Len(t, h.Spec.Metrics, 1)
	metric := h.Spec.Metrics[0].Pods.Metric.Name
	// The metric exists in vlm-server's /metrics.
	assert.Contains(t, metricNames(t), metric)
}

// metricNames are the metric names the openai package registers.
func metricNames(t *testing.T) []string {
	var names []string
	for _, f := range []string{"metrics.go", "gateway.go"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "openai", f))
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`Name:\s*"([a-z_:]+)"`).FindAllStringSubmatch(string(src), -1) {
			names = append(names, m[1])
		}
	}
	return names
}

func TestEndpointPickerReadsVLMMetrics(t *testing.T) {
	names := metricNames(t)
	// What an unmodified endpoint picker reads from a vLLM-compatible
	// server (the model-server protocol's recommended names).
	for _, want := range []string{"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:cache_config_info"} {
		assert.Contains(t, names, want)
	}
	m := load(t)
	require.Len(t, m.configMaps, 1)
	var cfg endpointPickerConfig
	for name, data := range m.configMaps[0].Data {
		require.NoError(t, yaml.UnmarshalStrict([]byte(data), &cfg), name)
	}
	assert.Equal(t, "EndpointPickerConfig", cfg.Kind)
	var types, refs []string
	for _, p := range cfg.Plugins {
		types = append(types, p.Type)
	}
	for _, want := range []string{"queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer", "max-score-picker"} {
		assert.Contains(t, types, want)
	}
	require.Len(t, cfg.SchedulingProfiles, 1)
	for _, p := range cfg.SchedulingProfiles[0].Plugins {
		refs = append(refs, p.PluginRef)
		assert.Contains(t, types, p.PluginRef, "a profile names a declared plugin")
	}
	assert.True(t, slices.Contains(refs, "max-score-picker"), "the profile picks")
}

// The Inference Extension's Go module is not served by the module proxy
// this project builds with, so its objects are checked against these
// types: the fields of inference.networking.k8s.io/v1 InferencePool
// (api/v1/inferencepool_types.go upstream) and gateway.networking.k8s.io/v1
// HTTPRoute that the manifests use, decoded strictly (an unknown or
// misspelt field fails), and the endpoint picker's plugin configuration.
type inferencePool struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Name       string     `json:"-"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		TargetPorts []struct {
			Number int32 `json:"number"`
		} `json:"targetPorts"`
		AppProtocol       string `json:"appProtocol,omitempty"`
		EndpointPickerRef *struct {
			Group *string `json:"group,omitempty"`
			Kind  string  `json:"kind,omitempty"`
			Name  string  `json:"name"`
			Port  *struct {
				Number int32 `json:"number"`
			} `json:"port,omitempty"`
			FailureMode string `json:"failureMode,omitempty"`
		} `json:"endpointPickerRef"`
	} `json:"spec"`
}

type objectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// UnmarshalJSON keeps Name at hand.
func (p *inferencePool) UnmarshalJSON(data []byte) error {
	type plain inferencePool
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode((*plain)(p)); err != nil {
		return err
	}
	p.Name = p.Metadata.Name
	return nil
}

type httpRoute struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		ParentRefs []struct {
			Group string `json:"group,omitempty"`
			Kind  string `json:"kind,omitempty"`
			Name  string `json:"name"`
		} `json:"parentRefs"`
		Rules []struct {
			Matches []struct {
				Path struct {
					Type  string `json:"type"`
					Value string `json:"value"`
				} `json:"path"`
			} `json:"matches"`
			BackendRefs []struct {
				Group string `json:"group"`
				Kind  string `json:"kind"`
				Name  string `json:"name"`
			} `json:"backendRefs"`
			Timeouts struct {
				Request string `json:"request"`
			} `json:"timeouts"`
		} `json:"rules"`
	} `json:"spec"`
}

type endpointPickerConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Plugins    []struct {
		Type       string         `json:"type"`
		Name       string         `json:"name,omitempty"`
		Parameters map[string]any `json:"parameters,omitempty"`
	} `json:"plugins"`
	SchedulingProfiles []struct {
		Name    string `json:"name"`
		Plugins []struct {
			PluginRef string   `json:"pluginRef"`
			Weight    *float64 `json:"weight,omitempty"`
		} `json:"plugins"`
	} `json:"schedulingProfiles"`
}
