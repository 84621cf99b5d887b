//go:build !vlmtest

package vlm

import "testing"

// TestHooksNeedTheTag says why the tests of the log routing and of the C++
// exception guard did not run: they call hooks compiled only with the
// build tag vlmtest, which ./build.sh test sets.
func TestHooksNeedTheTag(t *testing.T) {
	t.Skip("built without -tags vlmtest: the log-routing and C++-exception tests (testhooks_test.go) are not compiled; run ./build.sh test")
}
