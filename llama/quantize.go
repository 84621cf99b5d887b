package llama

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vlm-go/vlm"
)

// QuantType is the type most weights are converted to by Quantize.
type QuantType = vlm.FileType

// Quantization types.
const (
	QuantF16  = vlm.FileTypeF16  // 16-bit floats
	QuantQ8_0 = vlm.FileTypeQ8_0 // 8-bit blocks of 32 with an f16 scale
	QuantQ4_0 = vlm.FileTypeQ4_0 // 4-bit blocks of 32 with an f16 scale
)

// Quantize converts the model at src to typ and writes it to dst (through a
// temporary file in dst's folder, renamed when complete) with threads
// threads; 0 means vlm.DefaultThreads(), as everywhere in vlm, and a
// negative count is ErrInvalidArgument. The source is checked like Load
// checks it.
func Quantize(ctx context.Context, src, dst string, typ QuantType, threads int) error {
	if _, err := CheckFile(src); err != nil {
		return err
	}
	if threads < 0 {
		return fmt.Errorf("threads %d: %w", threads, ErrInvalidArgument)
	}
	if threads == 0 {
		threads = vlm.DefaultThreads()
	}
	switch typ {
	case QuantF16, QuantQ8_0, QuantQ4_0:
	default:
		return fmt.Errorf("quantization type %d: %w", typ, ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w (%w)", ErrCancelled, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)
	if err := vlm.Quantize(src, tmpName, typ, threads); err != nil {
		return err
	}
	if _, err := CheckFile(tmpName); err != nil {
		return fmt.Errorf("quantized file does not check out: %w", err)
	}
	return os.Rename(tmpName, dst)
}
