// Environment variables: parsing, bounds, errors that name the variable, the declaration registry.
#include <gtest/gtest.h>

#include <limits>

#include "detail/settings.hpp"
#include "unit/test_support.hpp"

namespace settings = coyote::detail::settings;
using coyote_test::EnvGuard;
using coyote_test::error_of;
using namespace std::chrono_literals;

namespace {

const settings::Millis k_ms{"COYOTE_TEST_SETTING_MS", "test", 250ms, "a test duration", 1ms, 10000ms};
const settings::Bytes k_bytes{"COYOTE_TEST_SETTING_BYTES", "test", 4096, "a test size",
                              settings::ByteRange{64, uint64_t{1} << 32, "auto", 7}};
const settings::Flag k_flag{"COYOTE_TEST_SETTING_FLAG", "test", false, "a test switch"};
const settings::Choice k_choice{"COYOTE_TEST_SETTING_CHOICE", "test", "b", {"a", "b", "c"}, "a test choice"};
const settings::Integer k_int{"COYOTE_TEST_SETTING_INT", "test", 3, -5, 5, "a test integer"};
const settings::Text k_family{"COYOTE_TEST_SETTING_IP_<device>", "test", "none", "a test family"};
const settings::Text k_checked_family{"COYOTE_TEST_SETTING_ADDR_<device>", "test", "", "a checked test family",
                                      settings::ipv4_problem};

}  // namespace

TEST(Settings, ByteParserAcceptsBinarySuffixesAndRejectsOverflow) {
    EXPECT_EQ(settings::parse_bytes("0"), 0u);
    EXPECT_EQ(settings::parse_bytes("64"), 64u);
    EXPECT_EQ(settings::parse_bytes("4K"), 4096u);
    EXPECT_EQ(settings::parse_bytes("4kib"), 4096u);
    EXPECT_EQ(settings::parse_bytes("2M"), 2u << 20);
    EXPECT_EQ(settings::parse_bytes("1G"), 1u << 30);
    EXPECT_EQ(settings::parse_bytes("18446744073709551615"), std::numeric_limits<uint64_t>::max());
    EXPECT_FALSE(settings::parse_bytes("18446744073709551616"));
    EXPECT_FALSE(settings::parse_bytes("17592186044417M"));  // wraps a 64-bit multiply
    EXPECT_FALSE(settings::parse_bytes("-1"));
    EXPECT_FALSE(settings::parse_bytes("4X"));
    EXPECT_FALSE(settings::parse_bytes(""));
    EXPECT_FALSE(settings::parse_bytes("K"));
}

TEST(Settings, IntegerParserIsExactAndOverflowSafe) {
    EXPECT_EQ(settings::parse_integer("-42"), -42);
    EXPECT_EQ(settings::parse_integer("9223372036854775807"), std::numeric_limits<int64_t>::max());
    EXPECT_EQ(settings::parse_integer("-9223372036854775808"), std::numeric_limits<int64_t>::min());
    EXPECT_FALSE(settings::parse_integer("9223372036854775808"));
    EXPECT_FALSE(settings::parse_integer("12ms"));
    EXPECT_FALSE(settings::parse_integer(" 1"));
    EXPECT_FALSE(settings::parse_integer("-"));
}

TEST(Settings, DefaultsWhenUnsetOrEmpty) {
    EnvGuard a("COYOTE_TEST_SETTING_MS", nullptr), b("COYOTE_TEST_SETTING_BYTES", "");
    EXPECT_EQ(k_ms.get(), 250ms);
    EXPECT_EQ(k_bytes.get(), 4096u);
    EXPECT_FALSE(k_bytes.is_set());
    EXPECT_FALSE(k_flag.get());
    EXPECT_EQ(k_choice.get(), "b");
    EXPECT_EQ(k_int.get(), 3);
}

TEST(Settings, ValuesAreReadAtEachGet) {
    {
        EnvGuard g("COYOTE_TEST_SETTING_MS", "1500");
        EXPECT_EQ(k_ms.get(), 1500ms);
    }
    EXPECT_EQ(k_ms.get(), 250ms);
    EnvGuard b("COYOTE_TEST_SETTING_BYTES", "auto"), f("COYOTE_TEST_SETTING_FLAG", "Yes");
    EXPECT_EQ(k_bytes.get(), 7u);
    EXPECT_TRUE(k_flag.get());
}

TEST(Settings, MalformedOrOutOfRangeValuesNameTheVariable) {
    struct Case {
        const settings::Setting* s;
        const char* name;
        const char* value;
    };
    const Case cases[] = {
        {&k_ms, "COYOTE_TEST_SETTING_MS", "9223372036854775807"},
        {&k_ms, "COYOTE_TEST_SETTING_MS", "0"},
        {&k_ms, "COYOTE_TEST_SETTING_MS", "1s"},
        {&k_bytes, "COYOTE_TEST_SETTING_BYTES", "17592186044417M"},
        {&k_bytes, "COYOTE_TEST_SETTING_BYTES", "32"},
        {&k_flag, "COYOTE_TEST_SETTING_FLAG", "2"},
        {&k_choice, "COYOTE_TEST_SETTING_CHOICE", "d"},
        {&k_int, "COYOTE_TEST_SETTING_INT", "6"},
    };
    for (const auto& c : cases) {
        EnvGuard g(c.name, c.value);
        auto [code, what] = error_of([&] {
            if (c.s == &k_ms) (void)k_ms.get();
            else if (c.s == &k_bytes) (void)k_bytes.get();
            else if (c.s == &k_flag) (void)k_flag.get();
            else if (c.s == &k_choice) (void)k_choice.get();
            else (void)k_int.get();
        });
        EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument)) << c.name << "=" << c.value;
        EXPECT_NE(what.find(c.name), std::string::npos) << what;
        EXPECT_NE(what.find(std::string("'") + c.value + "'"), std::string::npos) << what;
        EXPECT_NE(what.find(c.s->info().accepts), std::string::npos) << what;
        // check_all finds the same variable.
        auto [code2, what2] = error_of([] { settings::check_all(); });
        EXPECT_NE(what2.find(c.name), std::string::npos) << what2;
    }
}

TEST(Settings, FamiliesTakeASuffix) {
    EnvGuard g("COYOTE_TEST_SETTING_IP_3", "10.0.0.3");
    EXPECT_EQ(k_family.name("3"), "COYOTE_TEST_SETTING_IP_3");
    EXPECT_EQ(k_family.get("3"), "10.0.0.3");
    EXPECT_EQ(k_family.get("4"), "none");
}

TEST(Settings, CheckAllChecksEveryMemberOfAFamilyAndItsSuffix) {
    {
        EnvGuard ok("COYOTE_TEST_SETTING_ADDR_0", "10.0.0.1");
        EXPECT_NO_THROW(settings::check_all());
        EnvGuard bad("COYOTE_TEST_SETTING_ADDR_12", "10.0.0");
        auto [code, what] = error_of([] { settings::check_all(); });
        EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument));
        EXPECT_NE(what.find("COYOTE_TEST_SETTING_ADDR_12='10.0.0'"), std::string::npos) << what;
        EXPECT_NE(what.find("not an IPv4 address"), std::string::npos) << what;
    }
    EnvGuard word("COYOTE_TEST_SETTING_ADDR_x", "10.0.0.1");
    auto [code, what] = error_of([] { settings::check_all(); });
    EXPECT_EQ(code, static_cast<int>(coyote::Errc::invalid_argument));
    EXPECT_NE(what.find("'x' is not a device number"), std::string::npos) << what;
}

TEST(Settings, RegistryListsEveryDeclarationOnceInMarkdown) {
    int found = 0;
    for (const settings::Info* i : settings::all()) {
        if (i->group == "test") ++found;
        EXPECT_FALSE(i->help.empty()) << i->name;
    }
    EXPECT_EQ(found, 7);
    const std::string md = settings::markdown();
    EXPECT_NE(md.find("| `COYOTE_TEST_SETTING_BYTES` | bytes | `4K` |"), std::string::npos) << md;
    EXPECT_NE(md.find("`COYOTE_POST_TIMEOUT_MS`"), std::string::npos);
    EXPECT_NE(md.find("`COYOTE_BACKEND`"), std::string::npos);
}
