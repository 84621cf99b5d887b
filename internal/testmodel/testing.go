package testmodel

import (
	"fmt"
	"testing"

	"github.com/vlm-go/vlm/gguf"
)

// TinyPair writes the tiny preset for projector type proj (tiny-mlp,
// tiny-idefics3, tiny-gemma3 or tiny-qwen2vl) with weights of type typ into t.TempDir()
// and returns the paths; it fails the test on error. It takes a few
// milliseconds.
func TinyPair(t testing.TB, proj ProjectorType, typ gguf.TensorType) (modelPath, projPath string) {
	t.Helper()
	spec, err := TinySpec(proj, typ)
	if err != nil {
		t.Fatalf("testmodel.TinyPair: %v", err)
	}
	modelPath, projPath, err = Write(t.TempDir(), spec)
	if err != nil {
		t.Fatalf("testmodel.TinyPair: %v", err)
	}
	return modelPath, projPath
}

// TinySpec returns the tiny preset for projector type proj with weights of
// type typ; tests use it to predict what TinyPair's files will report.
func TinySpec(proj ProjectorType, typ gguf.TensorType) (Spec, error) {
	name, ok := tinyPresets[proj]
	if !ok {
		return Spec{}, fmt.Errorf("%w for projector type %q (known: %v)", ErrUnknownPreset, proj, ProjectorTypes())
	}
	spec, err := Preset(name)
	if err != nil {
		return Spec{}, err
	}
	spec.WeightType = typ
	return spec, spec.Validate()
}
