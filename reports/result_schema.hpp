#pragma once
// The version of the canonical result document (docs/result-schema.md, docs/schemas/): written by
// run/result.cpp, checked by every reader.
namespace kvb {

inline constexpr int kResultSchemaVersion = 1;

}  // namespace kvb
