#include <coyote/error.hpp>

namespace coyote {
namespace {

class Category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coyote"; }
    std::string message(int ev) const override {
        switch (static_cast<Errc>(ev)) {
        case Errc::invalid_argument: return "invalid argument";
        case Errc::not_supported: return "not supported";
        case Errc::resource_exhausted: return "resource exhausted";
        case Errc::not_mapped: return "address not mapped";
        case Errc::remote_rejected: return "rejected by remote target";
        case Errc::peer_gone: return "peer gone";
        case Errc::timeout: return "timed out";
        case Errc::protocol: return "protocol error";
        case Errc::no_device: return "no Coyote device found";
        case Errc::mpi: return "MPI error";
        }
        return "unknown coyote error";
    }
};

std::string compose(const std::string& call, const std::string& context) {
    std::string what = call;
    if (!context.empty()) what += ": " + context;
    return what;  // std::system_error appends ": <code message>"
}

}  // namespace

const std::error_category& coyote_category() noexcept {
    static const Category cat;
    return cat;
}

Error::Error(std::error_code code, std::string call, std::string context)
    : std::system_error(code, compose(call, context)), call_(std::move(call)), context_(std::move(context)) {}

void throw_errno(const std::string& call, const std::string& context) {
    throw Error(std::error_code(errno, std::generic_category()), call, context);
}

void throw_error(Errc e, const std::string& call, const std::string& context) {
    throw Error(make_error_code(e), call, context);
}

}  // namespace coyote
