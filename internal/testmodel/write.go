package testmodel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vlm-go/vlm/gguf"
)

// Hash returns a hex digest of the spec and GeneratorVersion: equal for specs
// that give byte-identical files, different otherwise. File names carry its
// first 12 digits.
func (s Spec) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "vlm testmodel generator %d\n", GeneratorVersion)
	if b, err := json.Marshal(s); err == nil {
		h.Write(b)
	} else {
		fmt.Fprintf(h, "%#v", s) // NaN or Inf in a float field: invalid, but still hashable
	}
	return hex.EncodeToString(h.Sum(nil))
}

// safeName keeps letters, digits, '.', '-' and '_' of s ("custom" if none).
func safeName(s string) string {
	out := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
	if strings.Trim(out, "_") == "" {
		return "custom"
	}
	return out
}

// FileNames returns the content-addressed base names of the spec's text model
// and projector, e.g. "tiny-idefics3-f16-0123456789ab.gguf" and
// "mmproj-tiny-idefics3-f16-0123456789ab.gguf".
func (s Spec) FileNames() (model, proj string) {
	stem := fmt.Sprintf("%s-%s-%s", safeName(s.Name), s.WeightType, s.Hash()[:12])
	return stem + ".gguf", "mmproj-" + stem + ".gguf"
}

// Write validates spec and writes its text model and projector into dir
// (which must exist) under [Spec.FileNames], replacing files of those names
// atomically. It returns the two paths.
func Write(dir string, spec Spec) (modelPath, projPath string, err error) {
	return write(context.Background(), dir, spec, false)
}

// Ensure returns the paths of spec's files in cacheDir, writing them first
// when they are missing (or have the wrong size). cacheDir is created if
// needed. Files are content-addressed (spec hash and generator version in
// the name) and written atomically, so processes that race on the same
// cache both end up with complete, identical files. Cancelling ctx stops a
// write between tensors.
func Ensure(ctx context.Context, cacheDir string, spec Spec) (modelPath, projPath string, err error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", "", fmt.Errorf("testmodel: %w", err)
	}
	return write(ctx, cacheDir, spec, true)
}

// DefaultCacheDir returns the directory where [DemoPair] and vlm-gen keep
// generated models: os.UserCacheDir()/vlm/models.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("testmodel: no cache directory: %w", err)
	}
	return filepath.Join(d, "vlm", "models"), nil
}

// DemoSpec is the spec of the built-in demo pair: the "tiny" preset
// (SmolVLM-style, idefics3 projector) in F16.
func DemoSpec() Spec {
	s, err := Preset("tiny")
	if err != nil {
		panic(err) // the preset table is fixed
	}
	s.WeightType = gguf.TypeF16
	return s
}

// DemoPair returns the built-in demo pair (DemoSpec) that examples use when
// no model is given: generated into DefaultCacheDir on first use (a fraction
// of a second) and reused after.
func DemoPair(ctx context.Context) (modelPath, projPath string, err error) {
	dir, err := DefaultCacheDir()
	if err != nil {
		return "", "", err
	}
	return Ensure(ctx, dir, DemoSpec())
}

func write(ctx context.Context, dir string, spec Spec, reuse bool) (modelPath, projPath string, err error) {
	text, proj, err := spec.plans()
	if err != nil {
		return "", "", err
	}
	mName, pName := spec.FileNames()
	modelPath, projPath = filepath.Join(dir, mName), filepath.Join(dir, pName)
	for _, f := range []struct {
		path string
		plan *filePlan
	}{{modelPath, text}, {projPath, proj}} {
		if reuse {
			want, err := f.plan.size()
			if err != nil {
				return "", "", err
			}
			if st, err := os.Stat(f.path); err == nil && st.Mode().IsRegular() && st.Size() == want {
				continue
			}
		}
		if err := f.plan.writeFile(ctx, f.path, spec.Seed); err != nil {
			return "", "", err
		}
	}
	return modelPath, projPath, nil
}

// writeFile writes the plan to path atomically, generating one tensor at a
// time.
func (p *filePlan) writeFile(ctx context.Context, path string, seed uint64) error {
	w := gguf.NewWriter()
	for _, e := range p.kvs {
		if err := w.AddKV(e.key, e.val); err != nil {
			return fmt.Errorf("testmodel: %w", err)
		}
	}
	for _, t := range p.tensors {
		fill := func() ([]byte, error) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return t.data(seed)
		}
		if err := w.AddTensorFunc(t.name, t.typ, t.shape, fill); err != nil {
			return fmt.Errorf("testmodel: %w", err)
		}
	}
	if err := w.WriteFile(path); err != nil {
		return fmt.Errorf("testmodel: writing %s: %w", path, err)
	}
	return nil
}

// values returns the tensor's values before encoding.
func (t tensorPlan) values(seed uint64) []float32 {
	vals := make([]float32, t.elems())
	switch t.init {
	case initOnes:
		for i := range vals {
			vals[i] = 1
		}
	default:
		newNormalGen(seed, t.name).fill(vals, t.std)
	}
	return vals
}

// data returns the tensor's encoded bytes.
func (t tensorPlan) data(seed uint64) ([]byte, error) {
	vals := t.values(seed)
	switch t.typ {
	case gguf.TypeF32:
		return gguf.EncodeF32(vals), nil
	case gguf.TypeF16:
		return gguf.EncodeF16(vals), nil
	case gguf.TypeQ8_0:
		return gguf.EncodeQ8_0(vals)
	}
	return nil, fmt.Errorf("testmodel: tensor %s: cannot encode type %s", t.name, t.typ)
}
