// VirtualSerialPort implements the SerialPort interface of the Web Serial
// API (open, readable, writable, close, getInfo, forget, connect and
// disconnect events) over a WebSocket to the virtual ESP32 that
// `gota serve` runs. The WebAssembly code takes exactly the path it takes
// with a real port; only the object it is handed differs.
//
// The server emulates the line: each WebSocket carries raw serial bytes as
// binary messages at the rate given by ?baud=N, so a baud change means
// closing the port and opening it again, as with a real SerialPort.
// setSignals sends DTR/RTS as a text message {"dtr": bool, "rts": bool}
// (firmware-agent/virtual/signals.go); they reach the virtual board's
// reset circuit (EN, GPIO0) as on a dev board with a USB-UART bridge.
"use strict";

class VirtualSerialPort extends EventTarget {
  // info is what the server says the port is (/virtual-device): its USB
  // ids, as a real port's getInfo() has them.
  constructor(url, info) {
    super();
    this._url = url;
    this._info = info || {};
    this._ws = null;
    this.readable = null;
    this.writable = null;
    this.connected = true;
    this.ondisconnect = null;
    this.onconnect = null;
  }

  getInfo() {
    const info = { name: "virtual ESP32 (" + this._url + ")" };
    if (this._info.usbVendorId !== undefined) {
      info.usbVendorId = this._info.usbVendorId;
      info.usbProductId = this._info.usbProductId;
    }
    return info;
  }

  async open(options) {
    if (!options || !(options.baudRate > 0)) {
      throw new TypeError("Failed to execute 'open' on 'SerialPort': baudRate is required and must be positive.");
    }
    if (this._ws) {
      throw new DOMException("The port is already open.", "InvalidStateError");
    }
    const bufferSize = options.bufferSize || 255;
    const sep = this._url.includes("?") ? "&" : "?";
    const ws = new WebSocket(this._url + sep + "baud=" + options.baudRate);
    ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new DOMException("Failed to open serial port (virtual device unreachable).", "NetworkError"));
    });
    this._ws = ws;

    let readCtl = null;
    this.readable = new ReadableStream({
      start(c) { readCtl = c; },
      cancel() { readCtl = null; },
    }, new ByteLengthQueuingStrategy({ highWaterMark: bufferSize }));

    // Bytes already handed to the socket but not sent count against
    // bufferSize: write() waits until the socket drains below it, which
    // is what makes writer.ready push back on the caller.
    const drain = async () => {
      while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount > bufferSize) {
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    this.writable = new WritableStream({
      async write(chunk) {
        if (ws.readyState !== WebSocket.OPEN) {
          throw new DOMException("The device has been lost.", "NetworkError");
        }
        ws.send(chunk);
        await drain();
      },
      async close() { await drain(); },
    }, new CountQueuingStrategy({ highWaterMark: 1 }));

    ws.onmessage = (ev) => {
      if (readCtl) {
        try { readCtl.enqueue(new Uint8Array(ev.data)); } catch (e) { /* stream closed */ }
      }
    };
    ws.onerror = null;
    ws.onclose = () => {
      if (this._ws !== ws) return; // closed by us
      this._ws = null;
      if (readCtl) {
        try { readCtl.error(new DOMException("The device has been lost.", "NetworkError")); } catch (e) {}
        readCtl = null;
      }
      this.connected = false;
      const ev = new Event("disconnect", { bubbles: true });
      if (typeof this.ondisconnect === "function") this.ondisconnect(ev);
      this.dispatchEvent(ev);
    };
  }

  async close() {
    if (!this._ws) {
      throw new DOMException("The port is already closed.", "InvalidStateError");
    }
    if ((this.readable && this.readable.locked) || (this.writable && this.writable.locked)) {
      throw new TypeError("Failed to execute 'close' on 'SerialPort': Cannot cancel a locked stream");
    }
    const ws = this._ws;
    this._ws = null;
    this.readable = null;
    this.writable = null;
    await new Promise((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) return resolve();
      ws.onclose = () => resolve();
      ws.close(1000, "port closed");
    });
  }

  // setSignals sets DTR (dataTerminalReady) and/or RTS (requestToSend);
  // members left out keep their value, as with a real SerialPort. The
  // break signal is not modelled by the virtual line and is ignored.
  async setSignals(signals) {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) {
      throw new DOMException("Failed to execute 'setSignals' on 'SerialPort': The port is closed.", "InvalidStateError");
    }
    const msg = {};
    if (signals && signals.dataTerminalReady !== undefined) msg.dtr = !!signals.dataTerminalReady;
    if (signals && signals.requestToSend !== undefined) msg.rts = !!signals.requestToSend;
    if (signals && signals.break === undefined && msg.dtr === undefined && msg.rts === undefined) {
      throw new TypeError("Failed to execute 'setSignals' on 'SerialPort': Signals dictionary is empty.");
    }
    if (msg.dtr !== undefined || msg.rts !== undefined) this._ws.send(JSON.stringify(msg));
  }

  // getSignals reports the input lines. A dev board's USB-UART bridge has
  // nothing wired to them, so they read deasserted.
  async getSignals() {
    if (!this._ws) {
      throw new DOMException("Failed to execute 'getSignals' on 'SerialPort': The port is closed.", "InvalidStateError");
    }
    return { dataCarrierDetect: false, clearToSend: false, ringIndicator: false, dataSetReady: false };
  }

  async forget() {
    if (this._ws) await this.close();
  }
}

// gotaVirtual is what the WebAssembly side looks for: whether this page
// was served with a virtual device, and a factory for its port.
globalThis.gotaVirtual = {
  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + location.host + "/serial";
  },
  // available resolves to true when the server runs a virtual device.
  async available() {
    try {
      const r = await fetch("/virtual-device", { cache: "no-store" });
      if (r.ok) {
        try { this._info = await r.json(); } catch (e) { this._info = {}; }
      }
      return r.ok;
    } catch (e) {
      return false;
    }
  },
  port() {
    return new VirtualSerialPort(this.url(), this._info);
  },
};
globalThis.VirtualSerialPort = VirtualSerialPort;
