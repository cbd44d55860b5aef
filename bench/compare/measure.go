package main

import (
	"os"
	"strconv"
)

// readRSS reads what a measure wrapper wrote.
func readRSS(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(data), 10, 64)
	return n
}
