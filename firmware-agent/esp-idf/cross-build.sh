#!/usr/bin/env bash
# cross-build.sh compiles the portable part of the C agent (everything but
# the ESP-IDF layer, gota_idf.c) for a 32-bit RISC-V core, ESP32-C3's
# instruction set, with every warning an error, and checks its code size
# against the budget in README.md. No Xtensa toolchain is packaged for
# Debian; the ESP-IDF build of the whole component is the user's.
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-riscv64-unknown-elf-gcc}
SIZE=${SIZE:-riscv64-unknown-elf-size}
BUDGET=16384 # bytes of .text (code and read-only data) for the portable part
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
objs=()
for src in src/gota_frame.c src/gota_core.c src/gota_xfer.c; do
	obj="$out/$(basename "${src%.c}").o"
	"$CC" --specs=picolibc.specs -march=rv32imc_zicsr -mabi=ilp32 -Os -std=c99 \
		-Wall -Wextra -Werror -ffunction-sections -fdata-sections -Isrc -c "$src" -o "$obj"
	objs+=("$obj")
done
"$SIZE" "${objs[@]}"
text=$("$SIZE" "${objs[@]}" | awk 'NR > 1 { t += $1 } END { print t }')
ram=$(printf '#include "gota_core.h"\nunsigned long gota_ram = sizeof(gota_core_t);\n' |
	"$CC" --specs=picolibc.specs -march=rv32imc_zicsr -mabi=ilp32 -Isrc -x c - -S -o - |
	awk '/\.word/ { print $2; exit }')
echo "esp-idf: portable part .text ${text} bytes (budget ${BUDGET}), agent state ${ram} bytes (rv32)"
if [ "$text" -gt "$BUDGET" ]; then
	echo "esp-idf: .text ${text} bytes over the ${BUDGET}-byte budget" >&2
	exit 1
fi
