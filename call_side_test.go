package connmgr

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// The default call (no observer, hook or picker) is one allocation that
// also holds its first attempt's request: what only some calls need
// lives in the side struct, so that this one stays in the 480-byte size
// class (it was 544 bytes, in the 576-byte class).
func TestDefaultCallFitsTheSmallerSizeClass(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(call{}), uintptr(480), "size of call")
}
