// Models named as Hugging Face users name them (checkpoint/hf_cache.h): the hub cache directory
// the environment names, with huggingface_hub's precedence, and "org/name" or a models--org--name
// folder resolved to the snapshot refs/main points to, never fetched.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "checkpoint/checkpoint.h"
#include "checkpoint/hf_cache.h"
#include "core/error.h"
#include "core/file_io.h"
#include "test_support.h"

using namespace ckpt;
namespace fs = std::filesystem;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

// <hub>/models--org--tiny with two snapshots (the tiny Llama in each) and refs/main naming `main`.
void make_cache_entry(const std::string& hub, const std::string& main, const std::string& other) {
  const fs::path repo = fs::path(hub) / "models--org--tiny";
  for (const auto& rev : {main, other}) {
    fs::create_directories(repo / "snapshots" / rev);
    for (const char* f : {"model.safetensors", "config.json"})
      fs::copy_file(test::testdata(std::string("llama/") + f), repo / "snapshots" / rev / f);
  }
  fs::create_directories(repo / "refs");
  write_text_file((repo / "refs" / "main").string(), main);  // no newline, as huggingface_hub writes it
}

}  // namespace

TEST(HfCache, HubCacheDirFollowsHuggingfaceHubPrecedence) {
  EXPECT_EQ(hf_hub_cache_dir(env_of({{"HOME", "/h"}})), "/h/.cache/huggingface/hub");
  EXPECT_EQ(hf_hub_cache_dir(env_of({{"HOME", "/h"}, {"XDG_CACHE_HOME", "/x"}})), "/x/huggingface/hub");
  EXPECT_EQ(hf_hub_cache_dir(env_of({{"HOME", "/h"}, {"XDG_CACHE_HOME", "/x"}, {"HF_HOME", "~/hf"}})), "/h/hf/hub");
  EXPECT_EQ(hf_hub_cache_dir(env_of({{"HF_HOME", "/a"}, {"HUGGINGFACE_HUB_CACHE", "/legacy"}})), "/legacy");
  EXPECT_EQ(hf_hub_cache_dir(env_of({{"HF_HOME", "/a"}, {"HUGGINGFACE_HUB_CACHE", "/legacy"}, {"HF_HUB_CACHE", "/new"}})),
            "/new");
}

TEST(HfCache, RepoIdAndRepoFolderResolveToTheSnapshotOfRefsMain) {
  test::ScratchDir dir;
  const std::string hub = dir / "hf/hub";
  const std::string main = std::string(40, 'a'), other = std::string(40, 'b');
  make_cache_entry(hub, main, other);
  const std::string want = hub + "/models--org--tiny/snapshots/" + main;
  const EnvLookup env = env_of({{"HF_HOME", dir / "hf"}});
  EXPECT_EQ(resolve_model_path("org/tiny", env), want);
  EXPECT_EQ(resolve_model_path(hub + "/models--org--tiny", env), want);
  EXPECT_EQ(resolve_model_path(hub + "/models--org--tiny/", env), want);
  // A snapshot directory, or any existing path, is read as it is.
  EXPECT_EQ(resolve_model_path(hub + "/models--org--tiny/snapshots/" + other, env), hub + "/models--org--tiny/snapshots/" + other);
  EXPECT_EQ(resolve_model_path(test::testdata("llama"), env), test::testdata("llama"));

  OpenOptions oo;
  oo.env = env;
  Checkpoint ck = open_checkpoint("org/tiny", oo);
  EXPECT_EQ(ck.path, want);
  EXPECT_EQ(ck.tensors.size(), open_checkpoint(test::testdata("llama")).tensors.size());
  EXPECT_EQ(ck.architecture(), "LlamaForCausalLM");

  // Without refs/main, the only snapshot; with several, the user must choose.
  fs::remove(fs::path(hub) / "models--org--tiny/refs/main");
  try {
    resolve_model_path("org/tiny", env);
    ADD_FAILURE() << "two snapshots and no refs/main resolved";
  } catch (const Error& e) {
    EXPECT_NE(e.rule().find("2 snapshots"), std::string::npos) << e.rule();
  }
  fs::remove_all(fs::path(hub) / "models--org--tiny/snapshots" / other);
  EXPECT_EQ(resolve_model_path("org/tiny", env), want);
}

TEST(HfCache, AModelNotInTheCacheIsOneErrorNamingWhereItLooked) {
  test::ScratchDir dir;
  const EnvLookup env = env_of({{"HF_HUB_CACHE", dir / "hub"}});
  try {
    resolve_model_path("org/absent", env);
    ADD_FAILURE() << "resolved a model that is not cached";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::kNoCheckpoint);
    EXPECT_NE(e.rule().find(dir / "hub/models--org--absent"), std::string::npos) << e.rule();
    EXPECT_NE(e.rule().find("never downloads"), std::string::npos) << e.rule();
  }
  // Not a repository id: left to the caller's "no such file" error.
  EXPECT_EQ(resolve_model_path("no/such/dir", env), "no/such/dir");
  EXPECT_EQ(resolve_model_path("../x", env), "../x");
}
