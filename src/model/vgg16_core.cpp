// vgg16_core.cpp — the TorchScript model: load once per backend, reload when
// the file changes, run batches. Exports the ImgsModelApi table.
#include <cpuid.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include "cxx/guard.hpp"
#include "model/image_core.hpp"
#include "model/model_core.h"

namespace {

using imgs::Error;

// Blocks asynchronous signals for its lifetime. torch's OpenMP and oneDNN
// threads are created inside load/forward (every entry point runs with
// one of these) and inherit this mask, so
// PostgreSQL's signals (cancel, timeouts, ...) keep going to the main
// thread; they are delivered when the mask is restored, and the C glue
// then sees InterruptPending.
class SignalsBlocked {
public:
    SignalsBlocked() {
        sigset_t all;
        sigfillset(&all);
        for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})  // synchronous: never blocked
            sigdelset(&all, s);
        pthread_sigmask(SIG_BLOCK, &all, &saved_);
    }
    ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
    SignalsBlocked(const SignalsBlocked &) = delete;
    SignalsBlocked &operator=(const SignalsBlocked &) = delete;

private:
    sigset_t saved_;
};

// One line of an error message from torch: the model's own exception
// ("RuntimeError: ...") when the text is a TorchScript traceback, else its
// first line; never the C++ backtrace. At most 300 characters.
std::string one_line(const std::string &text) {
    std::string first, raised;
    size_t at = 0;
    while (at < text.size()) {
        size_t end = std::min(text.find('\n', at), text.size());
        std::string line = text.substr(at, end - at);
        at = end + 1;
        size_t lead = line.find_first_not_of(" \t");
        if (lead == std::string::npos)
            continue;
        line.erase(0, lead);
        if (first.empty())
            first = line;
        // "RuntimeError: boom", "builtins.ValueError: ...": a name, then ": "
        size_t colon = line.find(": ");
        std::string name = line.substr(0, colon == std::string::npos ? 0 : colon);
        auto ends_with = [&](const char *suffix) {
            size_t k = std::strlen(suffix);
            return name.size() >= k && name.compare(name.size() - k, k, suffix) == 0;
        };
        if (!name.empty() && name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.") ==
                                 std::string::npos && (ends_with("Error") || ends_with("Exception")))
            raised = line;  // the last one wins: the innermost
    }
    std::string m = raised.empty() ? first : raised;
    for (char &c : m)
        if (c < 0x20 || c == 0x7F)
            c = ' ';
    return m.size() > 300 ? m.substr(0, 297) + "..." : m;
}

std::string torch_message(const c10::Error &e) { return one_line(e.what_without_backtrace()); }

struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    struct timespec mtime {};
    bool operator==(const FileId &o) const {
        return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
               mtime.tv_nsec == o.mtime.tv_nsec;
    }
};

struct Model {
    std::string path;
    FileId id;
    torch::jit::Module module;
    int dims = 0;
    std::string metadata;
    double load_seconds = 0;
};

std::unique_ptr<Model> current;  // the backend's model, if any
uint64_t loads = 0;               // models loaded by this backend
int current_threads = 0;

FileId stat_model(const std::string &path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        int e = errno;
        throw Error(e == ENOENT ? IMGS_SQLSTATE_UNDEFINED_FILE : IMGS_SQLSTATE_SYSTEM_ERROR,
                    "could not open model file \"" + path + "\": " + std::strerror(e),
                    "imgsearch.model names a TorchScript file written by tools/export_vgg16.py (make model).");
    }
    if (!S_ISREG(st.st_mode))
        throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "model file \"" + path + "\" is not a regular file");
    return {st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

// The string members of the array `key` of the model's metadata (the JSON
// tools/export_vgg16.py writes: a flat array of plain strings, no escapes).
std::vector<std::string> metadata_strings(const std::string &json, const std::string &key) {
    std::vector<std::string> out;
    size_t at = json.find("\"" + key + "\"");
    if (at == std::string::npos)
        return out;
    size_t open = json.find('[', at), close = json.find(']', at);
    if (open == std::string::npos || close == std::string::npos || open > close)
        throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "model metadata member \"" + key + "\" is not an array");
    for (size_t q = json.find('"', open); q < close; q = json.find('"', q + 1)) {
        size_t end = json.find('"', q + 1);
        if (end == std::string::npos || end > close)
            break;
        out.push_back(json.substr(q + 1, end - q - 1));
        q = end;
    }
    return out;
}

// Whether this CPU (and the kernel, for the AVX-512 register state) has the
// feature, named as /proc/cpuinfo names it. Unknown names are false: a model
// that needs what this build cannot check is not run on faith.
bool cpu_has(const std::string &feature) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    const unsigned leaf7_ebx = b, leaf7_ecx = c, leaf7_edx = d;
    unsigned leaf7_1_eax = __get_cpuid_count(7, 1, &a, &b, &c, &d) ? a : 0;
    // AVX-512 state (opmask, ZMM_Hi256, Hi16_ZMM: XCR0 bits 5-7) enabled by the OS
    bool zmm = false;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_OSXSAVE)) {
        unsigned lo, hi;
        __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        zmm = (lo & 0xE6) == 0xE6;
    }
    if (feature == "avx512f")
        return zmm && (leaf7_ebx & (1u << 16));
    if (feature == "avx512_vnni")
        return zmm && (leaf7_ebx & (1u << 16)) && (leaf7_ecx & (1u << 11));
    if (feature == "avx512_bf16")
        return zmm && (leaf7_ebx & (1u << 16)) && (leaf7_1_eax & (1u << 5));
    if (feature == "amx_int8")  // CPUID only: the kernel's AMX permission is not asked for
        return leaf7_edx & (1u << 25);
    return false;
}

// Refuses a model whose metadata names CPU features (cpu_features: an int8
// model needs avx512_vnni) that this CPU lacks: on such a CPU oneDNN would
// run it through slower kernels than the fp32 model's, so the fp32 model is
// the one to use, and the error says how to make it.
void check_cpu(const std::string &path, const std::string &metadata) {
    for (const std::string &feature : metadata_strings(metadata, "cpu_features")) {
        if (cpu_has(feature))
            continue;
        std::string fp32;
        size_t at = metadata.find("\"fp32_equivalent\": \"");
        if (at != std::string::npos) {
            at += std::strlen("\"fp32_equivalent\": \"");
            fp32 = metadata.substr(at, metadata.find('"', at) - at);
        }
        throw Error(IMGS_SQLSTATE_NOT_SUPPORTED,
                    "model file \"" + path + "\" needs the CPU feature " + feature + ", which this CPU lacks",
                    "Set imgsearch.model to the fp32 model of the same weights" +
                        (fp32.empty() ? std::string(".") : " (" + fp32 + " --out FILE).") +
                        " Its features are not comparable with this model's: re-extract them.");
    }
}

// Runs the module on a batch and returns [n, dims] float, contiguous.
torch::Tensor run(torch::jit::Module &module, torch::Tensor input) {
    c10::InferenceMode guard;
    torch::jit::IValue out = module.forward({input});
    if (!out.isTensor())
        throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "the model does not return a tensor");
    torch::Tensor t = out.toTensor();
    if (t.dim() != 2 || t.size(0) != input.size(0) || t.scalar_type() != torch::kFloat)
        throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "the model does not map [N,3,224,224] images to [N,dims] float features");
    return t.contiguous();
}

std::unique_ptr<Model> load_model(const std::string &path, const FileId &id) {
    auto started = std::chrono::steady_clock::now();
    // The graph is frozen and optimised once, here: run it as it is. The
    // default profiling executor re-specialises per input shape (measured:
    // slow first runs, and single images at a third of the speed once it
    // had seen batches of 4); the simple one runs at full speed throughout.
    torch::jit::getExecutorMode() = false;
    torch::jit::getProfilingMode() = false;
    auto m = std::make_unique<Model>();
    m->path = path;
    m->id = id;
    torch::jit::ExtraFilesMap extra{{"imgsearch.json", ""}};
    try {
        // Quantized weights are packed for the engine that is current when
        // they load: oneDNN's, the one tools/export_vgg16.py --int8 uses.
        for (at::QEngine e : at::globalContext().supportedQEngines())
            if (e == at::QEngine::ONEDNN)
                at::globalContext().setQEngine(e);
        m->module = torch::jit::load(path, torch::kCPU, extra);
        m->module.eval();
        // Not applied at export: torch 1.13 cannot load a module saved after it.
        m->module = torch::jit::optimize_for_inference(m->module);
    } catch (const c10::Error &e) {
        throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "could not load model file \"" + path + "\"",
                    "Not a TorchScript model made by tools/export_vgg16.py: " + torch_message(e));
    }
    check_cpu(path, extra["imgsearch.json"]);
    // A probe run finds the output size, checks the model's shape contract,
    // and pays the first run's one-off cost here rather than in a query.
    try {
        torch::Tensor out = run(m->module, torch::zeros({1, 3, IMGS_MODEL_SIDE, IMGS_MODEL_SIDE}));
        m->dims = int(out.size(1));
    } catch (const c10::Error &e) {
        throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "model file \"" + path + "\" does not accept 224x224 RGB images",
                    torch_message(e));
    } catch (const Error &e) {
        throw Error(e.sqlstate(), "model file \"" + path + "\" is not a feature extractor", e.what());
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {  // e.g. a TorchScript `raise` (torch::jit::JITException)
        throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "model file \"" + path + "\" does not accept 224x224 RGB images",
                    one_line(e.what()));
    }
    if (m->dims < 1 || m->dims > 16000)
        throw Error(IMGS_SQLSTATE_INVALID_PARAMETER,
                    "model file \"" + path + "\" gives " + std::to_string(m->dims) + " features; imgfeat allows 1 to 16000");
    m->metadata = extra["imgsearch.json"];
    m->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return m;
}

void set_threads(int threads) {
    if (threads != current_threads) {
        at::set_num_threads(threads);
        current_threads = threads;
    }
}

bool api_load(const char *path, int threads, ImgsModelInfo *info, ImgsError *err) {
    return imgs::guard(err, [&] {
        FileId id = stat_model(path);
        if (!current || current->path != path || !(current->id == id)) {
            current.reset();  // free the old model before the new one is read
            SignalsBlocked blocked;
            set_threads(threads);
            current = load_model(path, id);
            loads++;
        }
        info->dims = current->dims;
        info->metadata = current->metadata.c_str();
        info->load_seconds = current->load_seconds;
        info->generation = loads;
    });
}

bool api_preprocess(const void *data, size_t len, const int32_t *box, int64_t max_pixels, int64_t max_memory,
                    float *out, ImgsError *err) {
    return imgs::guard(err, [&] {
        SignalsBlocked blocked;  // in case a decoder starts threads after all
        imgs::model::preprocess_image(static_cast<const uint8_t *>(data), len, box, max_pixels, max_memory, out);
    });
}

bool api_forward(const float *in, int n, int threads, float *out, ImgsError *err) {
    return imgs::guard(err, [&] {
        if (!current)
            throw Error(IMGS_SQLSTATE_INTERNAL_ERROR, "no model loaded");
        torch::Tensor result;
        {
            SignalsBlocked blocked;
            set_threads(threads);
            torch::Tensor input = torch::from_blob(const_cast<float *>(in), {n, 3, IMGS_MODEL_SIDE, IMGS_MODEL_SIDE});
            try {
                result = run(current->module, input);
            } catch (const c10::Error &e) {
                throw Error(IMGS_SQLSTATE_EXTERNAL_ROUTINE, "VGG16 forward pass failed", torch_message(e));
            } catch (const Error &) {
                throw;
            } catch (const std::bad_alloc &) {
                throw;
            } catch (const std::exception &e) {  // a TorchScript `raise`: torch::jit::JITException
                throw Error(IMGS_SQLSTATE_EXTERNAL_ROUTINE, "VGG16 forward pass failed", one_line(e.what()));
            }
        }
        const int dims = current->dims;
        const float *r = result.data_ptr<float>();
        for (int i = 0; i < n; i++) {
            const float *v = r + size_t(i) * dims;
            double sq = 0;
            for (int k = 0; k < dims; k++)
                sq += double(v[k]) * v[k];
            if (!std::isfinite(sq))
                throw Error(IMGS_SQLSTATE_EXTERNAL_ROUTINE, "the model returned a feature that is not finite");
            // An all-zero feature stays zero: it has no direction to keep.
            float scale = sq > 0 ? float(1.0 / std::sqrt(sq)) : 0.0f;
            for (int k = 0; k < dims; k++)
                out[size_t(i) * dims + k] = v[k] * scale;
        }
    });
}

bool api_image_info(const void *data, size_t len, const char **format, int64_t *width, int64_t *height,
                    ImgsError *err) {
    return imgs::guard(err, [&] {
        auto h = imgs::model::read_image_header(static_cast<const uint8_t *>(data), len);
        imgs::model::displayed_size(h, width, height);
        *format = h.format;
    });
}

bool api_thumbnail(const void *data, size_t len, int side, int64_t max_pixels, int64_t max_memory, uint8_t **out,
                   size_t *out_len, ImgsError *err) {
    *out = nullptr;
    *out_len = 0;
    return imgs::guard(err, [&] {
        std::vector<uint8_t> jpeg;
        {
            SignalsBlocked blocked;  // as for preprocess
            jpeg = imgs::model::thumbnail_image(static_cast<const uint8_t *>(data), len, side, max_pixels,
                                                max_memory);
        }
        auto *buf = static_cast<uint8_t *>(std::malloc(jpeg.size()));
        if (!buf)
            throw std::bad_alloc();
        std::memcpy(buf, jpeg.data(), jpeg.size());
        *out = buf;
        *out_len = jpeg.size();
    });
}

const ImgsModelApi api_table = {IMGS_MODEL_ABI_VERSION, api_load,       api_preprocess,
                                api_forward,            api_image_info, api_thumbnail};

}  // namespace

extern "C" __attribute__((visibility("default"))) const ImgsModelApi *imgs_model_api(void) { return &api_table; }
