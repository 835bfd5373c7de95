package main

import (
	"golang.org/x/sys/unix"
)

// setRawBaud puts the terminal fd in raw mode (no echo, no line
// discipline, 8N1) at baud, as a serial port is.
func setRawBaud(fd, baud int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS2)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CBAUD
	t.Cflag |= unix.CS8 | unix.CLOCAL | unix.CREAD | unix.BOTHER
	t.Ispeed, t.Ospeed = uint32(baud), uint32(baud)
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS2, t)
}

// termiosBaud returns the output rate set on the terminal fd, whichever
// way it was set (a Bnnn constant or BOTHER with an arbitrary rate).
func termiosBaud(fd int) (int, error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS2)
	if err != nil {
		return 0, err
	}
	if c := t.Cflag & unix.CBAUD; c != unix.BOTHER {
		if b, ok := termiosRates[c]; ok {
			return b, nil
		}
	}
	return int(t.Ospeed), nil
}

var termiosRates = map[uint32]int{
	unix.B50: 50, unix.B75: 75, unix.B110: 110, unix.B134: 134, unix.B150: 150,
	unix.B200: 200, unix.B300: 300, unix.B600: 600, unix.B1200: 1200, unix.B1800: 1800,
	unix.B2400: 2400, unix.B4800: 4800, unix.B9600: 9600, unix.B19200: 19200,
	unix.B38400: 38400, unix.B57600: 57600, unix.B115200: 115200, unix.B230400: 230400,
	unix.B460800: 460800, unix.B500000: 500000, unix.B576000: 576000, unix.B921600: 921600,
	unix.B1000000: 1000000, unix.B1152000: 1152000, unix.B1500000: 1500000,
	unix.B2000000: 2000000, unix.B2500000: 2500000, unix.B3000000: 3000000,
	unix.B3500000: 3500000, unix.B4000000: 4000000,
}
