package nodemcu

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

const hashType = "crypto.hasher"

// cryptoModule is crypto.c's new_hash (mbedtls digests; new_hmac is not
// provided). finalize returns the binary digest.
func (v *vm) cryptoModule() module {
	L := v.L
	if L != nil {
		mt := L.NewTypeMetatable(hashType)
		methods := L.NewTable()
		check := func(L *lua.LState) hash.Hash {
			if ud, ok := L.Get(1).(*lua.LUserData); ok {
				if h, ok := ud.Value.(hash.Hash); ok {
					return h
				}
			}
			typeError(L, 1, "update", hashType)
			return nil
		}
		methods.RawSetString("update", L.NewFunction(func(L *lua.LState) int {
			h := check(L)
			h.Write([]byte(checkString(L, 2, "update")))
			return 0
		}))
		methods.RawSetString("finalize", L.NewFunction(func(L *lua.LState) int {
			L.Push(lua.LString(check(L).Sum(nil)))
			return 1
		}))
		mt.RawSetString("__index", methods)
	}
	algos := map[string]func() hash.Hash{
		"MD5": md5.New, "SHA1": sha1.New, "SHA224": sha256.New224, "SHA256": sha256.New,
		"SHA384": sha512.New384, "SHA512": sha512.New,
	}
	return module{funcs: map[string]lua.LGFunction{
		"new_hash": func(L *lua.LState) int {
			algo := checkString(L, 1, "new_hash")
			mk, ok := algos[strings.ToUpper(algo)] // strcasecmp
			if !ok {
				raise(L, "Unsupported algorithm: %s", algo)
			}
			ud := L.NewUserData()
			ud.Value = mk()
			L.SetMetatable(ud, L.GetTypeMetatable(hashType))
			L.Push(ud)
			return 1
		},
	}}
}
