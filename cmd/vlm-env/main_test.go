package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWithTag(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "-tags=vlm_march"},
		{"-count=1", "-count=1 -tags=vlm_march"},
		{"-tags=cuda", "-tags=cuda,vlm_march"},
		{"--tags=cuda,x -v", "--tags=cuda,x,vlm_march -v"},
		{"-tags=vlm_march", "-tags=vlm_march"},
		{"-tags=", "-tags=vlm_march"},
	} {
		assert.Equal(t, tc.want, withTag(tc.in, marchTag), tc.in)
	}
}

func TestMarchFlag(t *testing.T) {
	assert.Equal(t, "-march=znver4", marchFlag(false, "znver4"))
	assert.Equal(t, "-march=znver4", marchFlag(true, "znver4"))
	assert.Equal(t, "", marchFlag(true, ""), "portable is vlm's default: no flags")
	assert.NotEqual(t, "", marchFlag(false, ""))
}
