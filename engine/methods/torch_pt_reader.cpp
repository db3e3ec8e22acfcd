#include "engine/methods/torch_pt_reader.hpp"

#include <bit>
#include <cstring>
#include <unordered_map>

#include "util/errors.hpp"
#include "util/quote.hpp"

namespace kvb::pt {

static_assert(std::endian::native == std::endian::little, "storages are read as little-endian in place");

const char* to_string(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

int64_t Object::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;  // bounded by the storage size when the tensor was built
  return n;
}

namespace {

// Opcodes used by torch.save (protocol 2) plus the protocol-4 framing ones, named as in
// CPython's pickle module.
enum Op : uint8_t {
  MARK = '(',
  STOP = '.',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  NONE = 'N',
  BINPERSID = 'Q',
  REDUCE = 'R',
  BINUNICODE = 'X',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  APPENDS = 'e',
  BINGET = 'h',
  LONG_BINGET = 'j',
  EMPTY_LIST = ']',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  SETITEMS = 'u',
  EMPTY_DICT = '}',
  EMPTY_TUPLE = ')',
  BINFLOAT = 'G',
  PROTO = 0x80,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  SHORT_BINUNICODE = 0x8c,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};

// A hostile pickle must not ask for unbounded memory: one opcode byte can create an object
// (~140 bytes here) or push a memo reference. The official statistics' data.pkl is 370 KB of
// 114,095 opcodes; the limits are ~180x and ~18x that (docs/reliability.md).
constexpr uint64_t kMaxPickleBytes = uint64_t(64) << 20;
constexpr size_t kMaxPickleValues = size_t(1) << 21;  // objects made, and values on the stack

constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";
constexpr const char* kFloatStorage = "torch.FloatStorage";
constexpr const char* kOrderedDict = "collections.OrderedDict";

}  // namespace

// Runs data.pkl. Every read is checked against the remaining bytes and every stack access
// against the stack, so malformed input ends in InputError; each opcode consumes at least one
// byte and creates at most one object, so time and memory stay proportional to the pickle.
class Unpickler {
 public:
  Unpickler(TorchFile& file, std::string_view pickle) : f_(file), in_(pickle) {}

  uint32_t run() {
    while (true) {
      op_at_ = pos_;
      const uint8_t op = u8();
      switch (op) {
        case PROTO: {
          const uint8_t v = u8();
          if (v < 2 || v > 5) bad("unsupported pickle protocol {}", v);
          break;
        }
        case FRAME: bytes(8); break;  // a length hint only: the opcodes that follow are read as usual
        case STOP: {
          if (!marks_.empty()) bad("STOP with an open MARK");
          const uint32_t result = pop();
          if (!stack_.empty()) bad("STOP leaves {} values on the stack", stack_.size());
          return result;
        }
        case MARK:
          if (marks_.size() >= kMaxPickleValues) bad("more than {} open MARKs (the limit)", kMaxPickleValues);
          marks_.push_back(stack_.size());
          break;
        case NONE: push(make(Kind::None)); break;
        case NEWTRUE:
        case NEWFALSE: {
          const uint32_t id = make(Kind::Bool);
          obj(id).i = op == NEWTRUE;
          push(id);
          break;
        }
        case BININT: push_int(static_cast<int32_t>(le<uint32_t>())); break;
        case BININT1: push_int(u8()); break;
        case BININT2: push_int(le<uint16_t>()); break;
        case LONG1: {
          const uint8_t n = u8();
          if (n > 8) bad("LONG1 of {} bytes is too large", n);
          const std::string_view b = bytes(n);
          uint64_t v = 0;
          for (int k = n - 1; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(b[k]);
          if (n > 0 && n < 8 && (static_cast<uint8_t>(b[n - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
          push_int(static_cast<int64_t>(v));
          break;
        }
        case BINFLOAT: {  // big-endian IEEE double
          const std::string_view b = bytes(8);
          uint64_t v = 0;
          for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
          const uint32_t id = make(Kind::Float);
          obj(id).f = std::bit_cast<double>(v);
          push(id);
          break;
        }
        case BINUNICODE: push_str(bytes(le<uint32_t>())); break;
        case SHORT_BINUNICODE: push_str(bytes(u8())); break;
        case EMPTY_DICT: push(make(Kind::Dict)); break;
        case EMPTY_LIST: push(make(Kind::List)); break;
        case EMPTY_TUPLE: push(make(Kind::Tuple)); break;
        case TUPLE1:
        case TUPLE2:
        case TUPLE3: {
          const size_t n = op - TUPLE1 + 1;
          if (stack_.size() < floor() + n) bad("TUPLE{} needs {} values on the stack", n, n);
          const uint32_t id = make(Kind::Tuple);
          obj(id).items.assign(stack_.end() - n, stack_.end());
          stack_.resize(stack_.size() - n);
          push(id);
          break;
        }
        case TUPLE: {
          const uint32_t id = make(Kind::Tuple);
          obj(id).items = pop_to_mark();
          push(id);
          break;
        }
        case APPEND: {
          const uint32_t v = pop();
          container(Kind::List, "APPEND").items.push_back(v);
          break;
        }
        case APPENDS: {
          std::vector<uint32_t> vs = pop_to_mark();
          auto& items = container(Kind::List, "APPENDS").items;
          items.insert(items.end(), vs.begin(), vs.end());
          break;
        }
        case SETITEM: {
          const uint32_t v = pop(), k = pop();
          auto& items = container(Kind::Dict, "SETITEM").items;
          items.push_back(k);
          items.push_back(v);
          break;
        }
        case SETITEMS: {
          std::vector<uint32_t> kvs = pop_to_mark();
          if (kvs.size() % 2) bad("SETITEMS with an odd number ({}) of keys and values", kvs.size());
          auto& items = container(Kind::Dict, "SETITEMS").items;
          items.insert(items.end(), kvs.begin(), kvs.end());
          break;
        }
        case BINPUT: memo_[u8()] = top(); break;
        case LONG_BINPUT: memo_[le<uint32_t>()] = top(); break;
        case MEMOIZE: memo_[static_cast<uint32_t>(memo_.size())] = top(); break;
        case BINGET: push(memo_get(u8())); break;
        case LONG_BINGET: push(memo_get(le<uint32_t>())); break;
        case GLOBAL: {
          const std::string_view module = line();  // two statements: operand order matters
          std::string name = std::string(module) + "." + std::string(line());
          if (name != kRebuildTensor && name != kFloatStorage && name != kOrderedDict)
            bad("refusing pickle global {} (only {}, {} and {} are allowed)", quote(name), kRebuildTensor, kFloatStorage,
                kOrderedDict);
          const uint32_t id = make(Kind::Global);
          obj(id).s = std::move(name);
          push(id);
          break;
        }
        case BINPERSID: push(persistent_load(pop())); break;
        case REDUCE: {
          const uint32_t args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case BUILD: {
          // torch emits BUILD only to restore extra state on tensors; accept an empty state.
          const Object& state = obj(pop());
          const Kind target = obj(top()).kind;
          const bool empty_state = state.kind == Kind::None ||
                                   ((state.kind == Kind::Dict || state.kind == Kind::Tuple) && state.items.empty());
          if ((target != Kind::Tensor && target != Kind::Dict) || !empty_state)
            bad("unsupported BUILD of a {} with a {} state", to_string(target), to_string(state.kind));
          break;
        }
        default:
          bad("unsupported pickle opcode 0x{:02x}", op);
      }
    }
  }

 private:
  template <typename... Args>
  [[noreturn]] void bad(fmt::format_string<Args...> f, Args&&... args) {
    fail_input("{}: data.pkl at byte {}: {}", f_.path(), op_at_, fmt::format(f, std::forward<Args>(args)...));
  }

  std::string_view bytes(uint64_t n) {
    if (n > in_.size() - pos_) bad("needs {} bytes, only {} left; truncated or corrupt", n, in_.size() - pos_);
    const std::string_view b = in_.substr(pos_, n);
    pos_ += n;
    return b;
  }
  uint8_t u8() { return static_cast<uint8_t>(bytes(1)[0]); }
  template <typename T>
  T le() {
    T v;
    std::memcpy(&v, bytes(sizeof(T)).data(), sizeof(T));
    return v;
  }
  std::string_view line() {  // a GLOBAL operand: text up to '\n', kept short
    const size_t end = in_.find('\n', pos_);
    if (end == std::string_view::npos || end - pos_ > 200) bad("GLOBAL name is not a short newline-ended line");
    const std::string_view l = in_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return l;
  }

  Object& obj(uint32_t id) { return f_.objects_[id]; }
  uint32_t make(Kind k) {
    if (f_.objects_.size() >= kMaxPickleValues) bad("more than {} objects (the limit)", kMaxPickleValues);
    f_.objects_.emplace_back().kind = k;
    return static_cast<uint32_t>(f_.objects_.size() - 1);
  }
  void push_int(int64_t v) {
    const uint32_t id = make(Kind::Int);
    obj(id).i = v;
    push(id);
  }
  void push_str(std::string_view s) {
    const uint32_t id = make(Kind::Str);
    obj(id).s = s;
    push(id);
  }

  // Values below the innermost MARK belong to the enclosing frame and cannot be popped.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(uint32_t id) {
    if (stack_.size() >= kMaxPickleValues) bad("more than {} values on the stack (the limit)", kMaxPickleValues);
    stack_.push_back(id);
  }
  uint32_t top() {
    if (stack_.size() <= floor()) bad("stack is empty");
    return stack_.back();
  }
  uint32_t pop() {
    const uint32_t id = top();
    stack_.pop_back();
    return id;
  }
  std::vector<uint32_t> pop_to_mark() {
    if (marks_.empty()) bad("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<uint32_t> out(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  Object& container(Kind k, const char* op) {
    Object& o = obj(top());
    if (o.kind != k) bad("{} onto a {}, expected a {}", op, to_string(o.kind), to_string(k));
    return o;
  }
  uint32_t memo_get(uint32_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) bad("memo key {} was never stored", key);
    return it->second;
  }

  const Object& item(const Object& tuple, size_t i, Kind k, const char* what) {
    if (i >= tuple.items.size()) bad("{} is missing", what);
    const Object& o = obj(tuple.items[i]);
    if (o.kind != k) bad("{} is a {}, expected a {}", what, to_string(o.kind), to_string(k));
    return o;
  }

  // ('storage', torch.FloatStorage, key, location, numel) -> the bytes of <archive>/data/<key>.
  uint32_t persistent_load(uint32_t pid_id) {
    const Object& pid = obj(pid_id);
    if (pid.kind != Kind::Tuple || pid.items.size() != 5) bad("persistent id is not a 5-tuple");
    if (item(pid, 0, Kind::Str, "persistent id tag").s != "storage") bad("persistent id is not a 'storage' reference");
    if (item(pid, 1, Kind::Global, "storage type").s != kFloatStorage)
      bad("storage type {} is not float32", quote(obj(pid.items[1]).s));
    const std::string key = item(pid, 2, Kind::Str, "storage key").s;
    const int64_t numel = item(pid, 4, Kind::Int, "storage size").i;
    if (auto it = storages_.find(key); it != storages_.end()) {
      if (obj(it->second).i != numel) bad("storage {} is referenced with two different sizes", quote(key));
      return it->second;
    }
    const std::string entry_name = f_.prefix_ + "data/" + key;
    const ZipArchive::Entry* entry = f_.archive_.find(entry_name);
    if (!entry) bad("storage {} has no archive entry {}", quote(key), quote(entry_name));
    if (numel < 0 || static_cast<uint64_t>(numel) > entry->size / 4)
      bad("storage {} claims {} float32 elements, but {} holds {} bytes", quote(key), numel, quote(entry_name),
          entry->size);
    const uint32_t id = make(Kind::Storage);
    obj(id).s = key;
    obj(id).i = numel;
    obj(id).bytes = f_.archive_.read(*entry).substr(0, static_cast<size_t>(numel) * 4);
    storages_.emplace(key, id);
    return id;
  }

  uint32_t reduce(uint32_t fn_id, uint32_t args_id) {
    const Object& fn = obj(fn_id);
    const Object& args = obj(args_id);
    if (fn.kind != Kind::Global) bad("REDUCE calls a {}, not a global", to_string(fn.kind));
    if (args.kind != Kind::Tuple) bad("REDUCE arguments are a {}, not a tuple", to_string(args.kind));
    if (fn.s == kOrderedDict) {
      if (!args.items.empty()) bad("OrderedDict() with arguments is not supported");
      return make(Kind::Dict);
    }
    if (fn.s != kRebuildTensor) bad("{} cannot be called", fn.s);

    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (args.items.size() < 6 || args.items.size() > 7) bad("_rebuild_tensor_v2 with {} arguments", args.items.size());
    const uint32_t storage_id = args.items[0];
    const Object& storage = obj(storage_id);
    if (storage.kind != Kind::Storage) bad("tensor storage is a {}", to_string(storage.kind));
    const int64_t offset = item(args, 1, Kind::Int, "tensor storage offset").i;
    const Object& size = item(args, 2, Kind::Tuple, "tensor size");
    const Object& stride = item(args, 3, Kind::Tuple, "tensor stride");
    if (size.items.size() != stride.items.size() || size.items.size() > 8)
      bad("tensor has {} sizes and {} strides", size.items.size(), stride.items.size());
    std::vector<int64_t> shape;
    int64_t numel = 1;
    for (size_t k = 0; k < size.items.size(); ++k) {
      const int64_t s = item(size, k, Kind::Int, "tensor size").i;
      if (s < 0 || (s > 0 && numel > storage.i / s)) bad("tensor size {} does not fit its storage", s);
      numel *= s;
      shape.push_back(s);
    }
    // Contiguous (row-major) only: each stride is the product of the sizes after it; a
    // dimension of size 1 may carry any stride.
    int64_t expected = 1;
    for (size_t k = shape.size(); k-- > 0;) {
      const int64_t st = item(stride, k, Kind::Int, "tensor stride").i;
      if (shape[k] != 1 && st != expected) bad("tensor is not contiguous (stride {} where {} was expected)", st, expected);
      expected *= shape[k];
    }
    if (offset < 0 || offset > storage.i || numel > storage.i - offset)
      bad("tensor of {} elements at offset {} runs past its storage of {}", numel, offset, storage.i);
    const uint32_t id = make(Kind::Tensor);
    obj(id).storage = storage_id;
    obj(id).offset = offset;
    obj(id).shape = std::move(shape);
    return id;
  }

  TorchFile& f_;
  std::string_view in_;
  size_t pos_ = 0, op_at_ = 0;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, uint32_t> memo_;
  std::unordered_map<std::string, uint32_t> storages_;
};

TorchFile::TorchFile(const std::string& path) : archive_(path) {
  // torch.save names everything "<archive>/...": find the one data.pkl to learn the prefix.
  const ZipArchive::Entry* pkl = nullptr;
  for (const ZipArchive::Entry& e : archive_.entries()) {
    const std::string_view n = e.name;
    if (n == "data.pkl" || (n.ends_with("/data.pkl") && n.find('/') == n.size() - 9)) {
      if (pkl) fail_input("{}: more than one data.pkl in the archive", path);
      pkl = &e;
    }
  }
  if (!pkl) fail_input("{}: no data.pkl in the archive; not a torch.save file", path);
  prefix_ = pkl->name.substr(0, pkl->name.size() - 8);
  if (const ZipArchive::Entry* order = archive_.find(prefix_ + "byteorder")) {
    const std::string_view b = archive_.read(*order);
    if (b != "little") fail_input("{}: storages are stored {}-endian; only little-endian is supported", path, quote(b, 16));
  }
  if (pkl->size > kMaxPickleBytes)
    fail_input("{}: data.pkl of {} bytes is larger than the {} bytes kvbench reads (docs/reliability.md)", path,
               pkl->size, kMaxPickleBytes);
  Unpickler u(*this, archive_.read(*pkl));
  root_ = u.run();
}

const Object* TorchFile::find(const Object& dict, std::string_view key) const {
  if (dict.kind != Kind::Dict) return nullptr;
  // Python keeps the last of duplicate keys; search backwards to match.
  for (size_t k = dict.items.size(); k >= 2; k -= 2) {
    const Object& kobj = objects_[dict.items[k - 2]];
    if (kobj.kind == Kind::Str && kobj.s == key) return &objects_[dict.items[k - 1]];
  }
  return nullptr;
}

std::vector<float> TorchFile::values(const Object& tensor) const {
  if (tensor.kind != Kind::Tensor) fail_input("{}: expected a tensor, found a {}", path(), to_string(tensor.kind));
  const Object& storage = objects_[tensor.storage];
  std::vector<float> out(static_cast<size_t>(tensor.numel()));
  std::memcpy(out.data(), storage.bytes.data() + tensor.offset * 4, out.size() * 4);
  return out;
}

}  // namespace kvb::pt
