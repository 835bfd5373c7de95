package main

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gota-dev/gota/core/espimage"
)

// imageCache keeps a copy of every image gota flashes, named by its
// appended SHA-256 (the digest devices report for their slots), so that a
// later update of a device running one of them can be sent as deltas
// against it (SPEC.md 6.7) without --base.
type imageCache struct{ dir string }

// maxCachedImages bounds the cache; the least recently used go first.
const maxCachedImages = 32

// openImageCache returns the cache in $GOTA_CACHE, or in the user's cache
// directory; nil when GOTA_CACHE is "off" or no directory is known.
func openImageCache() *imageCache {
	dir := os.Getenv("GOTA_CACHE")
	switch dir {
	case "off":
		return nil
	case "":
		base, err := os.UserCacheDir()
		if err != nil {
			return nil
		}
		dir = filepath.Join(base, "gota", "images")
	}
	return &imageCache{dir: dir}
}

// get returns the cached image whose appended digest is digestHex, or nil.
func (c *imageCache) get(digestHex string) []byte {
	if c == nil || len(digestHex) != 64 {
		return nil
	}
	if _, err := hex.DecodeString(digestHex); err != nil {
		return nil
	}
	name := filepath.Join(c.dir, digestHex+".bin")
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	// The name is only a claim: a truncated or edited file is no base.
	img, err := espimage.Parse(b)
	if err != nil || !img.HashAppended || hex.EncodeToString(img.Digest[:]) != digestHex {
		return nil
	}
	now := time.Now()
	os.Chtimes(name, now, now) // recently used
	return b
}

// put stores image (an app image with an appended digest) and prunes the
// cache. Failures only cost a later delta, so they are not errors.
func (c *imageCache) put(image []byte) {
	if c == nil {
		return
	}
	img, err := espimage.Parse(image)
	if err != nil || !img.HashAppended {
		return
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return
	}
	name := filepath.Join(c.dir, hex.EncodeToString(img.Digest[:])+".bin")
	tmp, err := os.CreateTemp(c.dir, ".put-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(image[:img.Length])
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), name) != nil {
		os.Remove(tmp.Name())
		return
	}
	c.prune()
}

// prune removes all but the maxCachedImages most recently used images.
func (c *imageCache) prune() {
	files, err := filepath.Glob(filepath.Join(c.dir, "*.bin"))
	if err != nil || len(files) <= maxCachedImages {
		return
	}
	mtime := map[string]int64{}
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			mtime[f] = fi.ModTime().UnixNano()
		}
	}
	sort.Slice(files, func(i, j int) bool { return mtime[files[i]] > mtime[files[j]] })
	for _, f := range files[maxCachedImages:] {
		os.Remove(f)
	}
}
