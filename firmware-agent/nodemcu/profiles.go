package nodemcu

import (
	"fmt"
	"strings"

	"github.com/gota-dev/gota/firmware-agent/link"
)

// Profile is a NodeMCU dev-esp32 firmware build the virtual board
// emulates: a firmware generation and the optional modules the agent
// cares about. README.md ("Firmware generations") gives the sources.
type Profile struct {
	Name string
	// Doc says which builds it stands for.
	Doc     string
	Options Options
}

// Profiles are the builds gota.lua runs on, each emulated with Lua 5.1
// semantics and the bit module (gopher-lua cannot parse 5.3's operators;
// the 5.3 path runs on lua5.3 and fengari in the tests).
var Profiles = []Profile{
	{"console", "dev-esp32 since PR #3666 (late 2024): console module, rate fixed", Options{Firmware: ConsoleFirmware}},
	{"console-crypto", "the same with the crypto module: the agent checks BEGIN's SHA-256", Options{Firmware: ConsoleFirmware, Crypto: true}},
	{"uart-start", "dev-esp32 2024-05-12 until PR #3666: uart.on needs uart.start(0)", Options{Firmware: UARTStartFirmware}},
	{"uart", "dev-esp32 2022-08-30 to 2024-04-27: NodeMCU UART driver on the console", Options{Firmware: UARTFirmware}},
}

// FindProfile returns the profile called name.
func FindProfile(name string) (Profile, error) {
	var names []string
	for _, p := range Profiles {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Profile{}, fmt.Errorf("nodemcu: unknown firmware profile %q (have %s)", name, strings.Join(names, ", "))
}

// Receiver is the console UART's receive path as the generation installs
// it (README.md, "The console's receive path"): the console module and
// the uart-start generation call uart_driver_install(CONSOLE_UART, 256, 0,
// 0, NULL, 0); the UART driver generation passes
// CONFIG_NODEMCU_UART_DRIVER_BUF_SIZE_RX0 (default 512). Neither
// registers the ISR with ESP_INTR_FLAG_IRAM, and NodeMCU's
// sdkconfig.defaults leaves CONFIG_UART_ISR_IN_IRAM off: the ISR stops
// during flash operations.
func (f Firmware) Receiver() link.Receiver {
	if f == UARTFirmware {
		return link.Receiver{RingBuffer: 512}
	}
	return link.Receiver{RingBuffer: 256}
}

// InputQueue is how many received bytes wait between the console's reader
// and the Lua task. With the console module and on uart-start the console
// task posts every byte to NodeMCU's high-priority task queue
// (task_post_block_high), which holds 4/10 of
// CONFIG_NODEMCU_TASK_SLOT_MEMORY (2000) in 8-byte events: 100 bytes
// (components/task/task.c). On the uart generation the driver task posts
// what the ring holds, with at most 4 posts outstanding (platform.c
// task_uart's counting semaphore): up to 4 × 512 bytes.
func (f Firmware) InputQueue() int {
	if f == UARTFirmware {
		return 4 * 512
	}
	return 100
}
