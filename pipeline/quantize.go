package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vlm-go/vlm/llama"
)

// QuantizedModel returns the path of a Q8_0 copy of the model at path,
// making it first if needed: in dir (empty: the user cache dir's
// vlm/quantized), named after the source's name, size and modification
// time, so a changed source is quantized again.
func QuantizedModel(ctx context.Context, path, dir string, threads int) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		if _, cerr := llama.CheckFile(path); cerr != nil {
			return "", cerr
		}
		return "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("pipeline: no cache dir for the quantized model (set QuantizedCacheDir): %w", err)
		}
		dir = filepath.Join(base, "vlm", "quantized")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", abs, st.Size(), st.ModTime().UnixNano())))
	name := strings.TrimSuffix(filepath.Base(path), ".gguf")
	dst := filepath.Join(dir, fmt.Sprintf("%s-%s.Q8_0.gguf", name, hex.EncodeToString(h[:6])))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := llama.Quantize(ctx, path, dst, llama.QuantQ8_0, threads); err != nil {
		return "", err
	}
	return dst, nil
}
