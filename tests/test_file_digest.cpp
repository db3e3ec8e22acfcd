// The digest cache of util/file_digest.hpp: a remembered sha256 is reused only for the same file,
// unchanged; anything wrong with the cache itself costs a re-hash, never an error or a wrong digest.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "tests/hf_model_writer.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"
#include "util/file_digest.hpp"
#include "util/sha256.hpp"

namespace kvb::test {
namespace {

TEST(FileDigest, RemembersAnUnchangedFile) {
  TempDir dir;
  const std::string file = (dir / "w.bin").string(), text(1000, 'x');
  write_text(file, text);
  const auto cache = dir / "cache" / "sha256.json";  // its folder is created
  const FileDigest first = file_sha256(file, cache, 0);
  EXPECT_EQ(first.sha256, sha256_hex(text.data(), text.size()));
  EXPECT_FALSE(first.from_cache);
  const FileDigest again = file_sha256(file, cache, 0);
  EXPECT_EQ(again.sha256, first.sha256);
  EXPECT_TRUE(again.from_cache);
}

TEST(FileDigest, AChangedOrReplacedFileIsHashedAgain) {
  TempDir dir;
  const std::string file = (dir / "w.bin").string();
  const auto cache = dir / "sha256.json";
  write_text(file, "aaaa");
  file_sha256(file, cache, 0);
  write_text(file, "aaaaa");  // another size
  FileDigest d = file_sha256(file, cache, 0);
  EXPECT_FALSE(d.from_cache);
  EXPECT_EQ(d.sha256, sha256_hex("aaaaa", 5));
  write_text(dir / "new.bin", "bbbbb");  // the same size, another inode
  std::filesystem::rename(dir / "new.bin", file);
  d = file_sha256(file, cache, 0);
  EXPECT_FALSE(d.from_cache);
  EXPECT_EQ(d.sha256, sha256_hex("bbbbb", 5));
}

TEST(FileDigest, SmallFilesAndNoCacheAreHashedEveryTime) {
  TempDir dir;
  const std::string file = (dir / "w.bin").string();
  write_text(file, "abc");
  const auto cache = dir / "sha256.json";
  file_sha256(file, cache, 4);
  EXPECT_FALSE(file_sha256(file, cache, 4).from_cache);  // under the size that is cached
  EXPECT_FALSE(std::filesystem::exists(cache));
  EXPECT_EQ(file_sha256(file, {}, 0).sha256, sha256_hex("abc", 3));
}

TEST(FileDigest, ABrokenCacheCostsARehashNotAnError) {
  TempDir dir;
  const std::string file = (dir / "w.bin").string();
  write_text(file, "abc");
  const auto cache = dir / "sha256.json";
  for (const std::string& junk : std::vector<std::string>{"not json", "[1, 2]", R"({"kvbench_sha256_cache": 1, "files": {"x": 5}})",
                                 std::string(100, '[')}) {
    write_text(cache, junk);
    const FileDigest d = file_sha256(file, cache, 0);
    EXPECT_EQ(d.sha256, sha256_hex("abc", 3)) << junk;
    EXPECT_FALSE(d.from_cache) << junk;
    EXPECT_TRUE(file_sha256(file, cache, 0).from_cache) << junk;  // rewritten, valid again
  }
  // An entry whose digest is not 64 characters is not trusted.
  std::string text = read_text(cache);
  const std::string digest = sha256_hex("abc", 3);
  text.replace(text.find(digest), digest.size(), "beef");
  write_text(cache, text);
  EXPECT_FALSE(file_sha256(file, cache, 0).from_cache);
  // A cache that cannot be written (its folder is a file) is skipped.
  write_text(dir / "blocker", "");
  EXPECT_EQ(file_sha256(file, dir / "blocker" / "sha256.json", 0).sha256, digest);
  EXPECT_THROW(file_sha256((dir / "missing.bin").string(), cache, 0), InputError);
}

TEST(FileDigest, KeepsAtMostItsEntryLimitDroppingTheLeastRecentlyUsed) {
  TempDir dir;
  const auto cache = dir / "sha256.json";
  nlohmann::json files = nlohmann::json::object();
  for (size_t i = 0; i < kMaxDigestCacheEntries + 5; ++i)  // entries of files long gone, used at times 1, 2, ...
    files["/gone/f" + std::to_string(i)] = {{"identity", nullptr}, {"sha256", std::string(64, '0')}, {"used", i + 1}};
  write_text(cache, nlohmann::json{{"kvbench_sha256_cache", 1}, {"files", files}}.dump());
  const std::string file = (dir / "w.bin").string();
  write_text(file, "abc");
  file_sha256(file, cache, 0);
  const nlohmann::json kept = nlohmann::json::parse(read_text(cache))["files"];
  EXPECT_EQ(kept.size(), kMaxDigestCacheEntries);
  EXPECT_TRUE(kept.contains(std::filesystem::absolute(file).lexically_normal().string()));  // the newest stays
  EXPECT_FALSE(kept.contains("/gone/f5"));  // the six least recently used went
  EXPECT_TRUE(kept.contains("/gone/f6"));
}

}  // namespace
}  // namespace kvb::test
