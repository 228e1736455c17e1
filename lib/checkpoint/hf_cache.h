// Models named as Hugging Face users name them, read from the local Hugging Face cache and never
// fetched. The cache layout and its environment are huggingface_hub's
// (src/huggingface_hub/constants.py, file_download.py):
//   the hub cache is $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, where HF_HOME
//   defaults to $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface;
//   repository org/name lives in <hub cache>/models--org--name/ (repo_folder_name), its files in
//   snapshots/<commit>/ and the commit a branch or tag points to in refs/<revision> ("main").
#pragma once

#include <functional>
#include <string>

namespace ckpt {

// How the environment is read (std::getenv in the CLI; tests pass their own).
using EnvLookup = std::function<const char*(const char*)>;

// The hub cache directory the environment names, as huggingface_hub resolves it.
std::string hf_hub_cache_dir(const EnvLookup& env);

// The directory to read for what the user typed as a model:
//  - an existing path that is a cache repository folder (models--org--name/) resolves to the
//    snapshot of refs/main, or to its only snapshot when it has no refs/main;
//  - a path that does not exist but reads as a repository id ("org/name") resolves the same way
//    inside hf_hub_cache_dir(env), failing (kNoCheckpoint) with where it looked when the model is
//    not in the cache;
//  - anything else (an existing file or directory, including a snapshot directory itself) is
//    returned unchanged, so a local directory always wins over the cache, as in transformers.
std::string resolve_model_path(const std::string& path, const EnvLookup& env);

}  // namespace ckpt
