package errkind_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/vlm-go/vlm/internal/errkind"
)

func TestSentinelIsItselfAndItsKind(t *testing.T) {
	other := errors.New("other kind")
	s := errkind.New("pkg: bad thing", errkind.ErrInvalidArgument)
	wrapped := fmt.Errorf("context %d: %w", 3, s)
	assert.ErrorIs(t, wrapped, s)
	assert.ErrorIs(t, wrapped, errkind.ErrInvalidArgument)
	assert.NotErrorIs(t, wrapped, other)
	assert.NotErrorIs(t, errkind.New("pkg: bad thing", errkind.ErrInvalidArgument), s, "two sentinels with one message are different errors")
	assert.Equal(t, "context 3: pkg: bad thing", wrapped.Error())
	assert.Nil(t, errors.Unwrap(s))
}
