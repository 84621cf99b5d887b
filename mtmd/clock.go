package mtmd

import "time"

var epoch = time.Now()

// nanotime returns monotonic nanoseconds for the stats.
func nanotime() int64 { return int64(time.Since(epoch)) }
