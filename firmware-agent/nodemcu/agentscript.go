package nodemcu

import _ "embed"

// AgentScript is gota.lua, the Gota OTA agent for NodeMCU: the file a user
// uploads to a real board, and what `gota device run --agent lua` runs.
//
//go:embed gota.lua
var AgentScript []byte
