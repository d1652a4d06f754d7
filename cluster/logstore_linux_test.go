package cluster

import (
	"bufio"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// rssFileBytes is the process's file-backed resident memory: mostly
// mapped files, of which raft.db's mmap is the one that changes here.
func rssFileBytes(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if _, err := fmt.Sscanf(sc.Text(), "RssFile: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

// dropFromPageCache asks the kernel to forget raft.db's cached pages, as
// after a reboot, without touching the cache of anything else.
func dropFromPageCache(tb testing.TB, path string) {
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	const fadvDontNeed = 4 // POSIX_FADV_DONTNEED
	if _, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); errno != 0 {
		tb.Fatalf("fadvise %s: %v", path, errno)
	}
}
