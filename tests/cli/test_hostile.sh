# Hostile inputs through the CLI (issue 12): deep JSON nesting, a FIFO named as a shard, escape
# sequences in tensor names, and a stride-0 view that would expand a tiny .bin to 34 GB. Each is
# one clear error line with a non-zero exit, promptly (timeout guards the FIFO, which hung).
source "$(dirname "$0")/lib.sh"

# 12: 100,000 levels of nesting in a header value, in config.json and in an index (each crashed
# with SIGSEGV).
python3 - "$scratch" <<'PY'
import os, struct, sys
s, d = sys.argv[1], 100_000
def st(path, header):
    h = header.encode(); h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h)
st(os.path.join(s, "deep.safetensors"), '{"__metadata__":{"a":' + "[" * d + "]" * d + "}}")
os.makedirs(os.path.join(s, "deepcfg"))
st(os.path.join(s, "deepcfg", "model.safetensors"), "{}")
open(os.path.join(s, "deepcfg", "config.json"), "w").write('{"a":' + '{"a":' * d + "1" + "}" * d + "}")
os.makedirs(os.path.join(s, "deepidx"))
open(os.path.join(s, "deepidx", "model.safetensors.index.json"), "w").write(
    '{"metadata":' + "[" * d + "]" * d + ',"weight_map":{"a":"m.safetensors"}}')
# 16: a tensor name that would clear the line and print a forged success message.
name = "w\x1b[2K\rckpt: rechunk: done\n"
hdr = '{"%s":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}' % name.replace("\x1b", "\\u001b").replace("\r", "\\r").replace("\n", "\\n")
h = hdr.encode(); h += b" " * (-len(h) % 8)
open(os.path.join(s, "evil.safetensors"), "wb").write(struct.pack("<Q", len(h)) + h + b"\0" * 4)
PY
expect_error 1 "deep.safetensors: header is not valid JSON: JSON nesting is deeper than 127 levels.*\[header_bad_json\]" \
  timeout 20 "$ckpt" inspect "$scratch/deep.safetensors"
# config.json problems are usage-class errors (exit 2) throughout, as model_config reports them.
expect_error 2 "config.json is not valid JSON: JSON nesting is deeper than 127 levels" timeout 20 "$ckpt" inspect "$scratch/deepcfg"
expect_error 1 "model.safetensors.index.json: not valid JSON: JSON nesting is deeper.*\[index_invalid\]" \
  timeout 20 "$ckpt" inspect "$scratch/deepidx"

# 16: the name is escaped; the line ends with its code.
expect_error 1 "tensor 'w\\\\x1b\[2K\\\\x0dckpt: rechunk: done\\\\x0a': byte range.*\[tensor_invalid_info\]$" \
  "$ckpt" inspect "$scratch/evil.safetensors"
"$ckpt" inspect "$scratch/evil.safetensors" 2>&1 | LC_ALL=C grep -q $'[\x1b\r]' && fail "raw control bytes on stderr" || pass "no raw control bytes"

# 17: a FIFO named as the shard is refused at once instead of blocking in open().
mkdir "$scratch/fifo"
mkfifo "$scratch/fifo/model-00001-of-00001.safetensors"
echo '{"metadata":{},"weight_map":{"w":"model-00001-of-00001.safetensors"}}' >"$scratch/fifo/model.safetensors.index.json"
expect_error 1 "model-00001-of-00001.safetensors: is a FIFO (named pipe), not a regular file.*\[io\]" timeout 20 "$ckpt" inspect "$scratch/fifo"
expect_error 1 "is a FIFO (named pipe), not a regular file" timeout 20 "$ckpt" inspect "$scratch/fifo/model-00001-of-00001.safetensors"
expect_error 1 "is a character device, not a regular file" timeout 20 "$ckpt" rechunk /dev/zero "$scratch/out-zero"

# 15: torch.zeros(1).expand(2**33) saved: a tiny .bin whose conversion would write 34 GB.
python3 - "$scratch/expand.bin" <<'PY'
import struct, sys, zipfile, binascii
# Protocol-2 pickle of OrderedDict{'big': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 1), 0, (2**33,), (0,), False, OrderedDict())}
def s(x): b = x.encode(); return b"X" + struct.pack("<I", len(b)) + b
p = (b"\x80\x02" + b"ccollections\nOrderedDict\n)R(" + s("big") +
     b"ctorch._utils\n_rebuild_tensor_v2\n(" + b"(" + s("storage") + b"ctorch\nFloatStorage\n" + s("0") + s("cpu") +
     b"K\x01tQ" + b"K\x00" + b"\x8a\x05\x00\x00\x00\x00\x02\x85" + b"K\x00\x85" + b"\x89" +
     b"ccollections\nOrderedDict\n)R" + b"tR" + b"u.")
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", p)
    z.writestr("archive/byteorder", "little")
    z.writestr("archive/data/0", b"\0\0\0\0")
    z.writestr("archive/version", "3\n")
PY
size=$(stat -c %s "$scratch/expand.bin")
expect_error 1 "tensor 'big': view of \[8589934592\] with strides (0) makes 34.36 GB from its 4 B storage '0'.*--allow-expand.*\[expanded_view\]" \
  "$ckpt" convert "$scratch/expand.bin" "$scratch/expand-out"
[ ! -e "$scratch/expand-out" ] && pass "nothing written for the refused expansion" || fail "expand-out exists"
"$ckpt" inspect "$scratch/expand.bin" | grep -c "34.36 GB" >/dev/null && pass "inspect shows the $size-byte file's expanded view" || fail "inspect expand.bin"
"$ckpt" convert --allow-expand --dry-run "$scratch/expand.bin" "$scratch/expand-dry" >/dev/null 2>&1 \
  && pass "--allow-expand lets the plan through" || fail "--allow-expand refused"
finish
