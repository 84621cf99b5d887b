//go:build !vlmtest

package mtmd_test

import "testing"

// TestHooksNeedTheTag says why the tests that compare against llama.cpp's
// own mtmd_helper_eval_chunks — the reference evaluation, the evidence for
// vlm's refusal rules, the abort classification — did not run: they call a
// hook compiled only with the build tag vlmtest, which ./build.sh test sets.
func TestHooksNeedTheTag(t *testing.T) {
	t.Skip("built without -tags vlmtest: helper_diff, unchecked/evidence and abortclass tests are not compiled; run ./build.sh test")
}
