package romloader

import "testing"

func TestBootMode(t *testing.T) {
	for _, tc := range []struct {
		in           string
		mode         string
		download, ok bool
	}{
		{"ets Jul 29 2019 12:21:46\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n", "0x13", false, true},
		{"rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n", "0x3", true, true},
		{"rst:0x15 (USB_UART_CHIP_RESET),boot:0x23 (DOWNLOAD(USB/UART0))\r\nwaiting for download\r\n", "0x23", true, true},
		{"boot:0x", "", false, false},
		{"garbage", "", false, false},
		{"", "", false, false},
	} {
		mode, download, ok := bootMode([]byte(tc.in))
		if mode != tc.mode || download != tc.download || ok != tc.ok {
			t.Errorf("bootMode(%q) = %q, %v, %v; want %q, %v, %v", tc.in, mode, download, ok, tc.mode, tc.download, tc.ok)
		}
	}
}
