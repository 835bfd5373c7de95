#!/usr/bin/env bash
# Gota's one entry point for building, serving and testing.
#
#   ./build.sh          generate the Vugu code, build the WebAssembly page into dist/
#   ./build.sh serve    build, then serve the page on 127.0.0.1:${PORT:-8080}
#                       with a virtual ESP32 attached (no hardware needed)
#   ./build.sh test     install what the tests need, then run every test
#   ./build.sh bench    print the speed figures (link, flash, browser)
#
# Needs Go 1.26 on PATH. `test` installs Chromium, Lua 5.1, Lua 5.3 and Node.js
# from Debian's packages when they are missing (apt-get; run as root or with
# sudo) and runs the Web Serial binding's tests under Node.js. Tests skip what
# they cannot find on a developer's machine; with CI=true they fail instead.
set -euo pipefail
cd "$(dirname "$0")"

DIST=dist

# build: Vugu code generation, the WASM binary and its JavaScript support file.
build() {
	go tool vugugen -s -skip-go-mod -skip-main web >/dev/null
	gofmt -w web/0_components_gen.go # vugugen's merged output is not gofmt-clean
	mkdir -p "$DIST"
	GOOS=js GOARCH=wasm go build -trimpath -ldflags="-s -w" -o "$DIST/main.wasm" ./wasm
	cp "$(go env GOROOT)/lib/wasm/wasm_exec.js" "$DIST/wasm_exec.js"
	cp index.html web/static/virtual-serial.js web/static/style.css firmware-agent/nodemcu/gota.lua "$DIST/"
	go build -o "$DIST/gota" ./cmd/gota
}

# deps installs the system packages the tests drive: Debian's Chromium for
# the browser tests, Lua 5.1 and 5.3 to check the NodeMCU agent parses and
# runs on both interpreters NodeMCU builds use (and fengari, a Lua 5.3 with
# NodeMCU's 32-bit integers), Node.js (with npm) to run the WebAssembly tests
# of the Web Serial binding, fengari and esptool-js, mbedTLS and zlib for the
# host build of the C agent (firmware-agent/cagent: SHA-256, and the inflater
# behind the ROM's tinfl API), and a RISC-V compiler with picolibc's headers
# for the C agent's 32-bit cross build.
deps() {
	local missing=()
	command -v npm >/dev/null || missing+=(npm)
	command -v chromium >/dev/null || missing+=(chromium)
	command -v luac5.1 >/dev/null || missing+=(lua5.1)
	command -v luac5.3 >/dev/null || missing+=(lua5.3)
	command -v node >/dev/null || missing+=(nodejs)
	[ -f /usr/include/mbedtls/sha256.h ] || missing+=(libmbedtls-dev)
	[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
	command -v riscv64-unknown-elf-gcc >/dev/null || missing+=(gcc-riscv64-unknown-elf)
	[ -f /usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs ] || missing+=(picolibc-riscv64-unknown-elf)
	if [ ${#missing[@]} -gt 0 ]; then
		local sudo=""
		[ "$(id -u)" -ne 0 ] && sudo="sudo"
		echo "installing ${missing[*]} with apt-get" >&2
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	# esptool-js, pinned: the tests check the virtual ROM loader against it,
	# and take the flasher stubs it ships (esp-flasher-stub, Apache-2.0 OR
	# MIT) from it rather than from the repository.
	if [ ! -f .deps/node_modules/esptool-js/package.json ]; then
		npm install --prefix .deps --no-audit --no-fund --silent esptool-js@0.7.0 >/dev/null
	fi
	# fengari, pinned: Lua 5.3 with 32-bit integers (NodeMCU's default
	# number type) for TestAgentOnStockLua/fengari.
	if [ ! -f .deps/node_modules/fengari/package.json ]; then
		npm install --prefix .deps --no-audit --no-fund --silent fengari@0.1.5 >/dev/null
	fi
}

check_format() {
	local bad
	bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './dist/*'))
	if [ -n "$bad" ]; then
		echo "gofmt needed on:" >&2
		echo "$bad" >&2
		return 1
	fi
}

case "${1:-build}" in
build)
	build
	echo "built $DIST/ (page) and $DIST/gota (CLI)"
	;;
serve)
	build
	stubs=.deps/node_modules/esptool-js/lib/targets/stub_flasher
	[ -d "$stubs" ] && set -- "$1" --stub "$stubs" "${@:2}"
	exec "$DIST/gota" serve --dir "$DIST" --addr "127.0.0.1:${PORT:-8080}" "${@:2}"
	;;
test)
	deps
	build
	check_format
	go vet ./...
	GOOS=js GOARCH=wasm go vet ./core/... ./protocol/... ./wasm/... ./web/...
	# The C agent's portable part: warning-free for rv32, within its budget.
	firmware-agent/esp-idf/cross-build.sh
	# The Web Serial binding's tests run under Node (deps installed it).
	GOOS=js GOARCH=wasm go test -count=1 -exec "$(go env GOROOT)/lib/wasm/go_js_wasm_exec" ./web/webserial/...
	# Fuzz targets run their seed corpora as part of go test.
	go test -count=1 -timeout 12m ./...
	;;
bench)
	build
	GOTA_TESTDATA="${GOTA_TESTDATA:-$(cd .. && pwd)/shared/testdata/esp32}" "$DIST/gota" bench
	go test -run '^$' -bench . -benchtime 1x ./web/... ./e2e/...
	;;
*)
	echo "usage: $0 [build|serve|test|bench]" >&2
	exit 2
	;;
esac
