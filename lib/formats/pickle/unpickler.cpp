#include "formats/pickle/unpickler.h"

#include <cstring>
#include <map>

#include "core/error.h"
#include "formats/pickle/allowed_globals.h"
#include "formats/pickle/opcodes.h"
#include "formats/strict_json.h"

namespace ckpt::pickle {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kStr: return "str";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kSet: return "set";
    case Kind::kGlobal: return "global";
    case Kind::kStorage: return "storage";
    case Kind::kTensor: return "tensor";
  }
  return "?";
}

const Object* Object::get(const std::string& key) const {
  auto it = key_index.find("s" + key);
  return it == key_index.end() ? nullptr : entries[it->second].second;
}

namespace {

class Machine {
 public:
  Machine(const Source& src, Arena& arena, const Limits& limits) : src_(src), arena_(arena), limits_(limits) {}

  const Object* run(size_t start, size_t* end) {
    pos_ = start_ = start;
    for (;;) {
      op_at_ = pos_;
      const uint8_t op = u8();
      if (op == STOP) {
        if (stack_.size() != 1 || !marks_.empty()) invalid("STOP with " + std::to_string(stack_.size()) + " values on the stack");
        if (end) *end = pos_;
        return stack_.back();
      }
      step(op);
    }
  }

 private:
  // ---- errors: every message names the opcode and its offset ----
  std::string at() const { return src_.where + " offset " + std::to_string(op_at_); }
  [[noreturn]] void invalid(const std::string& what) const {
    fail(Errc::kPickleInvalid, src_.file, "", at() + ": " + what);
  }
  [[noreturn]] void refuse(const std::string& what) const {
    fail(Errc::kPickleRefused, src_.file, "", at() + ": " + what + " (not a plain state dict)");
  }

  // ---- operand reading, bounds-checked ----
  void need(size_t n) const {
    if (src_.size - pos_ < n) invalid("pickle ends in the middle of an opcode (truncated?)");
  }
  uint8_t u8() {
    need(1);
    return src_.data[pos_++];
  }
  uint64_t le(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(src_.data[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  std::string bytes(uint64_t n) {
    if (n > limits_.max_string) invalid("string of " + std::to_string(n) + " bytes is larger than allowed");
    need(n);
    std::string s(reinterpret_cast<const char*>(src_.data + pos_), n);
    pos_ += n;
    return s;
  }
  std::string line() {
    size_t start = pos_;
    for (;;) {
      if (pos_ - start > 256) invalid("GLOBAL name is longer than 256 bytes");
      if (u8() == '\n') return std::string(reinterpret_cast<const char*>(src_.data + start), pos_ - 1 - start);
    }
  }

  // ---- the stack ----
  void push(Object* o) {
    if (stack_.size() >= limits_.max_stack) invalid("stack deeper than " + std::to_string(limits_.max_stack));
    stack_.push_back(o);
  }
  Object* pop() {
    if (stack_.size() <= floor()) invalid(std::string(op_name(src_.data[op_at_])) + " on an empty stack");
    Object* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Object* top() {
    if (stack_.size() <= floor()) invalid(std::string(op_name(src_.data[op_at_])) + " on an empty stack");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Object*> pop_mark() {
    if (marks_.empty()) invalid(std::string(op_name(src_.data[op_at_])) + " without a MARK");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Object*> items(stack_.begin() + static_cast<ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Object* make(Kind k) {
    charge(sizeof(Object));
    return arena_.make(k);
  }
  Object* tuple(std::vector<Object*> items) {
    Object* t = make(Kind::kTuple);
    charge(items.size() * sizeof(Object*));
    t->items = std::move(items);
    return t;
  }

  // ---- memory: what the objects built so far hold, against the budget for the bytes read ----
  void charge(size_t bytes) {
    used_ += bytes;
    const size_t budget = limits_.memory_floor + (pos_ - start_) * limits_.memory_per_byte;
    if (used_ > budget)
      refuse("building it takes more than " + std::to_string(used_ >> 20) + " MiB after " + std::to_string(pos_ - start_) +
             " bytes of pickle; a state dict needs at most " + std::to_string(limits_.memory_floor >> 20) + " MiB + " +
             std::to_string(limits_.memory_per_byte) + " bytes per pickle byte (deeply nested or repeated containers)");
  }

  // ---- memo ----
  void put(uint64_t index) {
    if (memo_.size() >= limits_.max_memo && !memo_.count(index)) invalid("memo holds more than " + std::to_string(limits_.max_memo) + " entries");
    if (memo_.insert_or_assign(index, top()).second) charge(kNodeBytes);
  }
  void get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) invalid("memo entry " + std::to_string(index) + " was never stored");
    push(it->second);
  }

  // ---- dicts ----
  std::string key_of(const Object* k) const {
    switch (k->kind) {
      case Kind::kStr: return "s" + k->text;
      case Kind::kInt: return "i" + std::to_string(k->integer);
      case Kind::kBool: return "i" + std::to_string(k->boolean ? 1 : 0);
      case Kind::kNone: return "n";
      default: refuse(std::string("dict key of type ") + kind_name(k->kind));
    }
  }
  void set_item(Object* dict, Object* key, Object* value) {
    if (dict->kind != Kind::kDict) refuse(std::string("SETITEM on a ") + kind_name(dict->kind));
    auto [it, inserted] = dict->key_index.emplace(key_of(key), dict->entries.size());
    if (inserted) {
      charge(kNodeBytes + it->first.size() + sizeof(dict->entries[0]));
      dict->entries.emplace_back(key, value);
    }
    else dict->entries[it->second].second = value;  // Python semantics: a repeated key replaces
  }

  // ---- globals and their calls ----
  Object* global(const std::string& module, const std::string& name) {
    auto g = lookup_global(module, name);
    if (!g) refuse("global " + quote(module + "." + name) + " is not allowed");
    Object* o = make(Kind::kGlobal);
    o->text = module + "." + name;
    o->global = g->global;
    o->global_dtype = g->dtype;
    return o;
  }
  int64_t int_arg(const Object* o, const char* what) const {
    if (o->kind != Kind::kInt) invalid(std::string(what) + " must be an int, not " + kind_name(o->kind));
    return o->integer;
  }
  std::vector<int64_t> int_tuple(const Object* o, const char* what) const {
    if (o->kind != Kind::kTuple) invalid(std::string(what) + " must be a tuple, not " + kind_name(o->kind));
    std::vector<int64_t> v;
    for (const Object* x : o->items) v.push_back(int_arg(x, what));
    return v;
  }
  void expect_empty_dict(const Object* o, const char* what) const {
    if (o->kind != Kind::kDict) invalid(std::string(what) + " must be a dict, not " + kind_name(o->kind));
    if (!o->entries.empty()) refuse(std::string(what) + " is not empty (tensor metadata such as conj/neg bits or hooks)");
  }

  Object* rebuild_tensor(const std::string& fn, const std::vector<Object*>& a) {
    const bool v3 = fn == "_rebuild_tensor_v3";
    const size_t base = fn == "_rebuild_tensor" ? 4 : v3 ? 7 : 6;
    if (a.size() != base && !(base > 4 && a.size() == base + 1))
      invalid(fn + " called with " + std::to_string(a.size()) + " arguments");
    if (a[0]->kind != Kind::kStorage) invalid(fn + ": first argument is a " + kind_name(a[0]->kind) + ", not a storage");
    Object* t = make(Kind::kTensor);
    t->tensor.storage = a[0];
    t->tensor.dtype = a[0]->storage.dtype;
    int64_t offset = int_arg(a[1], "storage_offset");
    if (offset < 0) invalid(fn + ": negative storage offset");
    t->tensor.offset = static_cast<uint64_t>(offset);
    for (int64_t d : int_tuple(a[2], "size")) {
      if (d < 0) invalid(fn + ": negative size");
      t->tensor.shape.push_back(static_cast<uint64_t>(d));
    }
    t->tensor.strides = int_tuple(a[3], "stride");
    if (t->tensor.strides.size() != t->tensor.shape.size()) invalid(fn + ": size and stride have different lengths");
    if (base > 4) {
      if (a[4]->kind != Kind::kBool) invalid(fn + ": requires_grad must be a bool");
      expect_empty_dict(a[5], "backward_hooks");
    }
    if (v3) {
      if (a[0]->storage.dtype != DType::U8 || a[6]->kind != Kind::kGlobal || a[6]->global != Global::kDtype)
        invalid(fn + ": expects an UntypedStorage and a dtype");
      t->tensor.dtype = a[6]->global_dtype;
    }
    if (a.size() == base + 1 && base > 4) expect_empty_dict(a[base], "tensor metadata");
    return t;
  }

  Object* call(Object* callable, Object* args) {
    if (callable->kind != Kind::kGlobal) refuse(std::string("REDUCE on a ") + kind_name(callable->kind));
    if (args->kind != Kind::kTuple) invalid("REDUCE arguments are not a tuple");
    const std::string fn = callable->text.substr(callable->text.rfind('.') + 1);
    switch (callable->global) {
      case Global::kOrderedDict: {
        if (!args->items.empty()) refuse("OrderedDict called with arguments");
        Object* d = make(Kind::kDict);
        d->ordered = true;
        return d;
      }
      case Global::kRebuildTensor:
      case Global::kRebuildTensorV2:
      case Global::kRebuildTensorV3: return rebuild_tensor(fn, args->items);
      case Global::kRebuildParameter: {
        const auto& a = args->items;
        if (a.size() != 3 || a[0]->kind != Kind::kTensor || a[1]->kind != Kind::kBool)
          invalid("_rebuild_parameter expects (tensor, requires_grad, hooks)");
        expect_empty_dict(a[2], "backward_hooks");
        return a[0];
      }
      case Global::kStorageClass:
      case Global::kDtype: refuse("calling " + quote(callable->text) + " is not allowed");
    }
    refuse("calling " + quote(callable->text) + " is not allowed");
  }

  Object* persistent_load(Object* pid) {
    if (pid->kind != Kind::kTuple || pid->items.empty() || pid->items[0]->kind != Kind::kStr)
      refuse("persistent id is not a ('storage', ...) tuple");
    const auto& a = pid->items;
    if (a[0]->text != "storage") refuse("persistent id of type " + quote(a[0]->text) + " (only 'storage' is allowed)");
    if (a.size() != 5 && a.size() != 6) invalid("storage persistent id has " + std::to_string(a.size()) + " fields");
    if (a[1]->kind != Kind::kGlobal || a[1]->global != Global::kStorageClass)
      invalid("storage persistent id does not name a storage class");
    if (a[2]->kind != Kind::kStr || a[3]->kind != Kind::kStr) invalid("storage key and location must be strings");
    int64_t numel = int_arg(a[4], "storage size");
    if (numel < 0) invalid("negative storage size");
    auto it = storages_.find(a[2]->text);
    Object* s = nullptr;
    if (it != storages_.end()) {
      s = it->second;
      if (s->storage.dtype != a[1]->global_dtype || s->storage.numel != static_cast<uint64_t>(numel))
        invalid("storage " + quote(a[2]->text) + " is referenced with two different types or sizes");
    } else {
      s = make(Kind::kStorage);
      s->storage.key = a[2]->text;
      s->storage.dtype = a[1]->global_dtype;
      s->storage.numel = static_cast<uint64_t>(numel);
      storages_.emplace(s->storage.key, s);
      arena_.storages.emplace(s->storage.key, s);
    }
    if (a.size() == 5 || a[5]->kind == Kind::kNone) return s;
    // Legacy view_metadata: (view_key, offset, size) into the root storage.
    const Object* v = a[5];
    if (v->kind != Kind::kTuple || v->items.size() != 3 || v->items[0]->kind != Kind::kStr)
      invalid("storage view metadata is not a (key, offset, size) tuple");
    int64_t off = int_arg(v->items[1], "view offset"), n = int_arg(v->items[2], "view size");
    if (off < 0 || n < 0 || static_cast<uint64_t>(off) + static_cast<uint64_t>(n) > s->storage.numel)
      invalid("storage view reaches outside its storage");
    auto [vit, fresh] = views_.emplace(v->items[0]->text, nullptr);
    if (fresh) {
      Object* view = make(Kind::kStorage);
      view->storage = s->storage;
      view->storage.view_offset = static_cast<uint64_t>(off);
      view->storage.view_numel = static_cast<uint64_t>(n);
      vit->second = view;
    }
    return vit->second;
  }

  // ---- one opcode ----
  void step(uint8_t op) {
    switch (op) {
      case PROTO: {
        uint8_t v = u8();
        if (v > 3) refuse("pickle protocol " + std::to_string(v) + " (torch.save writes protocol 2; torch.load(weights_only=True) refuses 4 and 5)");
        return;
      }
      case MARK:
        if (marks_.size() >= limits_.max_stack) invalid("too many MARKs");
        marks_.push_back(stack_.size());
        return;
      case GLOBAL: {
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        return;
      }
      case REDUCE: {
        Object* args = pop();
        Object* callable = pop();
        push(call(callable, args));
        return;
      }
      case NEWOBJ: {
        Object* args = pop();
        Object* cls = pop();
        if (cls->kind != Kind::kGlobal || cls->global != Global::kOrderedDict)
          refuse(std::string("NEWOBJ of ") + (cls->kind == Kind::kGlobal ? quote(cls->text) : std::string(kind_name(cls->kind))));
        push(call(cls, args));
        return;
      }
      case BUILD: {
        Object* state = pop();
        Object* target = top();
        // nn.Module.state_dict() attaches `_metadata` to its OrderedDict; it is dropped here.
        if (target->kind != Kind::kDict || !target->ordered || state->kind != Kind::kDict)
          refuse(std::string("BUILD on a ") + kind_name(target->kind) + " (only the state dict's _metadata is allowed)");
        return;
      }
      case BINPERSID: push(persistent_load(pop())); return;
      case APPEND: {
        Object* v = pop();
        Object* list = top();
        if (list->kind != Kind::kList) refuse(std::string("APPEND on a ") + kind_name(list->kind));
        charge(sizeof(Object*));
        list->items.push_back(v);
        return;
      }
      case APPENDS: {
        std::vector<Object*> vs = pop_mark();
        Object* list = top();
        if (list->kind != Kind::kList) refuse(std::string("APPENDS on a ") + kind_name(list->kind));
        charge(vs.size() * sizeof(Object*));
        list->items.insert(list->items.end(), vs.begin(), vs.end());
        return;
      }
      case SETITEM: {
        Object* v = pop();
        Object* k = pop();
        set_item(top(), k, v);
        return;
      }
      case SETITEMS: {
        std::vector<Object*> kv = pop_mark();
        if (kv.size() % 2) invalid("SETITEMS with an odd number of values");
        Object* d = top();
        for (size_t i = 0; i < kv.size(); i += 2) set_item(d, kv[i], kv[i + 1]);
        return;
      }
      case TUPLE: push(tuple(pop_mark())); return;
      case EMPTY_TUPLE: push(tuple({})); return;
      case TUPLE1: {
        Object* a = pop();
        push(tuple({a}));
        return;
      }
      case TUPLE2: {
        Object* b = pop();
        Object* a = pop();
        push(tuple({a, b}));
        return;
      }
      case TUPLE3: {
        Object* c = pop();
        Object* b = pop();
        Object* a = pop();
        push(tuple({a, b, c}));
        return;
      }
      case EMPTY_LIST: push(make(Kind::kList)); return;
      case EMPTY_DICT: push(make(Kind::kDict)); return;
      case EMPTY_SET: push(make(Kind::kSet)); return;
      case NONE: push(make(Kind::kNone)); return;
      case NEWTRUE:
      case NEWFALSE: {
        Object* b = make(Kind::kBool);
        b->boolean = op == NEWTRUE;
        push(b);
        return;
      }
      case BININT: push_int(static_cast<int32_t>(le(4))); return;
      case BININT1: push_int(static_cast<int64_t>(le(1))); return;
      case BININT2: push_int(static_cast<int64_t>(le(2))); return;
      case LONG1: {
        uint8_t n = u8();
        if (n > 8) refuse("integer of " + std::to_string(n) + " bytes (wider than 64 bits)");
        uint64_t v = le(n);
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        push_int(static_cast<int64_t>(v));
        return;
      }
      case BINFLOAT: {
        uint64_t bits = 0;
        need(8);
        for (int i = 0; i < 8; ++i) bits = bits << 8 | src_.data[pos_ + i];  // big-endian
        pos_ += 8;
        Object* f = make(Kind::kFloat);
        std::memcpy(&f->real, &bits, 8);
        push(f);
        return;
      }
      case BINUNICODE: push_str(bytes(le(4))); return;
      case SHORT_BINSTRING: push_str(bytes(u8())); return;
      case BINPUT: put(le(1)); return;
      case LONG_BINPUT: put(le(4)); return;
      case BINGET: get(le(1)); return;
      case LONG_BINGET: get(le(4)); return;
      default: {
        const char* name = op_name(op);
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        if (!name) invalid(std::string("unknown opcode ") + hex);
        refuse(std::string("opcode ") + name + " (" + hex + ") is not allowed");
      }
    }
  }

  void push_int(int64_t v) {
    Object* o = make(Kind::kInt);
    o->integer = v;
    push(o);
  }
  void push_str(std::string s) {
    if (!is_valid_utf8(s)) invalid("string is not valid UTF-8");
    charge(s.size());
    Object* o = make(Kind::kStr);
    o->text = std::move(s);
    push(o);
  }

  const Source& src_;
  Arena& arena_;
  const Limits& limits_;
  // A hash node (memo entry, dict key index entry): its links, hash and value, beside the key.
  static constexpr size_t kNodeBytes = 48;
  size_t pos_ = 0, op_at_ = 0, start_ = 0;
  size_t used_ = 0;  // bytes charged by charge()
  std::vector<Object*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Object*> memo_;
  std::map<std::string, Object*> storages_, views_;
};

}  // namespace

const Object* unpickle(const Source& src, size_t start, Arena& arena, size_t* end, const Limits& limits) {
  if (start > src.size) fail(Errc::kPickleInvalid, src.file, "", src.where + ": starts past the end of the data");
  Machine m(src, arena, limits);
  return m.run(start, end);
}

}  // namespace ckpt::pickle
