package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
)

var statsLine = regexp.MustCompile(`stats: prompt=(\d+) \(images=(\d+) cached=(\d+) evaluated=(\d+)\) encoded=(\d+) generated=(\d+)`)

type turnStats struct{ prompt, images, cached, evaluated, encoded, generated int }

func parseStats(t *testing.T, stderr string) []turnStats {
	var out []turnStats
	for _, m := range statsLine.FindAllStringSubmatch(stderr, -1) {
		var v [6]int
		for i := range v {
			n, err := strconv.Atoi(m[i+1])
			require.NoError(t, err)
			v[i] = n
		}
		out = append(out, turnStats{v[0], v[1], v[2], v[3], v[4], v[5]})
	}
	return out
}

// TestInteractiveTwoTurns drives the chat for two turns, the second adding
// an image with /image, and checks that the second turn evaluated only its
// new tokens.
func TestInteractiveTwoTurns(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	imgPath := filepath.Join(t.TempDir(), "pic.png")
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, demoImage()))
	require.NoError(t, os.WriteFile(imgPath, buf.Bytes(), 0o644))

	stdin := strings.NewReader("Hello, who are you?\n/image " + imgPath + "\nWhat is in this picture?\n/quit\n")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-model", mp, "-mmproj", pp, "-n", "8", "-threads", "2", "-ctx", "2048"}, stdin, &stdout, &stderr)
	require.NoError(t, err, stderr.String())

	assert.Contains(t, stderr.String(), "will go with your next message")
	answers := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	assert.GreaterOrEqual(t, len(answers), 2, "two answers in %q", stdout.String())
	st := parseStats(t, stderr.String())
	require.Len(t, st, 2, stderr.String())
	first, second := st[0], st[1]
	assert.Zero(t, first.images)
	assert.Zero(t, first.cached)
	assert.Equal(t, first.prompt, first.evaluated)
	assert.Positive(t, second.images, "the second turn has the image")
	assert.Positive(t, second.encoded)
	// Only the new tokens were evaluated: the first turn's prompt came from the cache.
	assert.GreaterOrEqual(t, second.cached, first.prompt-1)
	assert.Equal(t, second.prompt-second.cached, second.evaluated)
	assert.Less(t, second.evaluated, second.prompt)
}

func TestOneShotWithDemoImage(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorGemma3, gguf.TypeF16)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-model", mp, "-mmproj", pp, "-prompt", "Describe.", "-n", "4", "-temp", "0.8", "-seed", "3", "-threads", "2", "-quiet"},
		strings.NewReader(""), &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	assert.NotContains(t, stderr.String(), "stats:")
	assert.True(t, strings.HasSuffix(stdout.String(), "\n"))
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-model", "x.gguf"},
		{"-n", "0"},
		{"-ngl", "-2"},
		{"extra"},
		{"-nosuchflag"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		assert.Error(t, err, "%v", args)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-model", "/nonexistent.gguf", "-mmproj", "/nonexistent.gguf", "-quiet"}, strings.NewReader(""), &stdout, &stderr)
	assert.ErrorContains(t, err, "not found")
}
