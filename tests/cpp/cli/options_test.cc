#include "tools/cli/options.h"

#include <gtest/gtest.h>

#include "kiln/status.h"

namespace kiln::cli {

TEST(CliOptions, ParsesShapeSpecs) {
    auto [name, shape] = parse_shape_spec("input:1x3x224x224");
    EXPECT_EQ(name, "input");
    EXPECT_EQ(shape, (Shape{1, 3, 224, 224}));
    auto [n2, s2] = parse_shape_spec("ns:x:8");  // names may contain ':'; the last one separates the dims
    EXPECT_EQ(n2, "ns:x");
    EXPECT_EQ(s2, (Shape{8}));
    EXPECT_TRUE(parse_shape_spec("s:scalar").second.empty());
}

TEST(CliOptions, RejectsBadShapeSpecs) {
    for (const char* bad : {"input", "input:", ":1x2", "input:1xx2", "input:1x-2", "input:ax2"}) {
        try {
            parse_shape_spec(bad);
            FAIL() << bad;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
            EXPECT_NE(std::string(e.what()).find("--shape"), std::string::npos);
        }
    }
}

TEST(CliOptions, ParsesInputSpecs) {
    auto [name, path] = parse_input_spec("x=/tmp/a=b.npy");
    EXPECT_EQ(name, "x");
    EXPECT_EQ(path, "/tmp/a=b.npy");
    EXPECT_THROW(parse_input_spec("x"), Error);
    EXPECT_THROW(parse_input_spec("=file"), Error);
    EXPECT_THROW(parse_input_spec("x="), Error);
}

TEST(CliOptions, DuplicateInputIsAnError) {
    InputOptions o;
    o.inputs = {"x=a.npy", "x=b.npy"};
    EXPECT_THROW(o.files(), Error);
}

TEST(CliOptions, ModelOptionsBecomeBuilderConfig) {
    ModelOptions m;
    m.shapes = {"a:2x3", "b:4"};
    m.opt_level = 1;
    m.disabled_passes = {"dead_code_elimination"};
    BuilderConfig c = m.finish();
    EXPECT_EQ(c.opt_level, 1);
    EXPECT_EQ(c.input_shapes.at("a"), (Shape{2, 3}));
    EXPECT_EQ(c.input_shapes.at("b"), (Shape{4}));
    EXPECT_EQ(c.disabled_passes.size(), 1u);
}

}  // namespace kiln::cli
