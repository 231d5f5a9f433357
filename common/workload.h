#ifndef FERRY_COMMON_WORKLOAD_H_
#define FERRY_COMMON_WORKLOAD_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "proto/ferry.pb.h"

namespace ferry {

// The reference workload `orders` of shared/WORKLOAD.md, the one generator that the tests,
// the quickstart and the benchmark share. Deterministic: the same calls give the same
// transactions. Names: companies C1, C2; sites C1-S1..C1-S3, C2-S1..C2-S3 (site number k of
// all six is C<k/3+1>-S<k%3+1>); parts P-000..P-199 at every site, unit_price 10 + part
// number at first; set-up customers CUST-00..CUST-99 (00..49 in C1, 50..99 in C2).
class OrdersWorkload {
 public:
  static constexpr int kSites = 6;
  static constexpr int kPartsPerSite = 200;
  static constexpr int kSetUpCustomers = 100;
  static constexpr int kMaxChangesPerSetUpTransaction = 100;

  // The set-up transactions, parents before children, at most 100 changes each.
  std::vector<wire::SubmitRequest> SetUp() const;

  // Transaction i of the timed part (i = 1, 2, ...). Prices follow the workload's own item
  // updates, so call it for i = 1, 2, ... in order, once each.
  wire::SubmitRequest Transaction(uint64_t i);

  static std::string SiteName(int site_number);  // 0..5

 private:
  std::array<std::array<int64_t, kPartsPerSite>, kSites> unit_price_ = InitialPrices();
  static std::array<std::array<int64_t, kPartsPerSite>, kSites> InitialPrices();
};

}  // namespace ferry

#endif  // FERRY_COMMON_WORKLOAD_H_
