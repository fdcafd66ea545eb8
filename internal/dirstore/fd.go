package dirstore

import (
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

func openRead(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func closeFD(fd int) { _ = unix.Close(fd) }

func fileSize(fd int) (size int64, isDir bool, err error) {
	var st unix.Stat_t
	for {
		err = unix.Fstat(fd, &st)
		if err != unix.EINTR {
			break
		}
	}
	return st.Size, st.Mode&unix.S_IFMT == unix.S_IFDIR, err
}

// preadFull fills buf from offset off; running into the end of the file
// first is an error, since the caller sized buf from the file's size.
func preadFull(fd int, buf []byte, off int64) error {
	for len(buf) > 0 {
		n, err := unix.Pread(fd, buf, off)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("pread at %d: %w", off, err)
		case n == 0:
			return fmt.Errorf("pread at %d: %w", off, io.ErrUnexpectedEOF)
		}
		buf, off = buf[n:], off+int64(n)
	}
	return nil
}
