#include "common/workload.h"

#include <cstdio>

namespace ferry {
namespace {

std::string PartNo(int part) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "P-%03d", part);
  return buf;
}

std::string SetUpCustomer(int n) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "CUST-%02d", n);
  return buf;
}

std::string Price(int64_t units) { return std::to_string(units) + ".00"; }

wire::LuChange* Add(wire::SubmitRequest& request, const std::string& lu,
                    wire::ChangeAction action) {
  wire::LuChange* change = request.add_changes();
  change->set_lu(lu);
  change->set_action(action);
  return change;
}

}  // namespace

std::string OrdersWorkload::SiteName(int site_number) {
  return "C" + std::to_string(site_number / 3 + 1) + "-S" + std::to_string(site_number % 3 + 1);
}

std::array<std::array<int64_t, OrdersWorkload::kPartsPerSite>, OrdersWorkload::kSites>
OrdersWorkload::InitialPrices() {
  std::array<std::array<int64_t, kPartsPerSite>, kSites> prices;
  for (auto& site : prices) {
    for (int part = 0; part < kPartsPerSite; ++part) site[part] = 10 + part;
  }
  return prices;
}

std::vector<wire::SubmitRequest> OrdersWorkload::SetUp() const {
  std::vector<wire::SubmitRequest> out;
  auto next = [&out]() -> wire::SubmitRequest& {
    if (out.empty() || out.back().changes_size() >= kMaxChangesPerSetUpTransaction) {
      out.emplace_back();
    }
    return out.back();
  };
  for (int c = 1; c <= 2; ++c) {
    auto* company = Add(next(), "Company", wire::NEW);
    (*company->mutable_keys())["company_id"] = "C" + std::to_string(c);
    (*company->mutable_attributes())["name"] = "Company " + std::to_string(c);
  }
  for (int s = 0; s < kSites; ++s) {
    auto* site = Add(next(), "Site", wire::NEW);
    (*site->mutable_keys())["site_id"] = SiteName(s);
    (*site->mutable_attributes())["company_id"] = "C" + std::to_string(s / 3 + 1);
    (*site->mutable_attributes())["description"] = "Site " + SiteName(s);
  }
  for (int s = 0; s < kSites; ++s) {
    for (int part = 0; part < kPartsPerSite; ++part) {
      auto* item = Add(next(), "Item", wire::NEW);
      (*item->mutable_keys())["site_id"] = SiteName(s);
      (*item->mutable_keys())["part_no"] = PartNo(part);
      (*item->mutable_attributes())["description"] = "Part " + PartNo(part);
      (*item->mutable_attributes())["unit_price"] = Price(10 + part);
    }
  }
  for (int n = 0; n < kSetUpCustomers; ++n) {
    auto* customer = Add(next(), "Customer", wire::NEW);
    (*customer->mutable_keys())["customer_id"] = SetUpCustomer(n);
    (*customer->mutable_attributes())["company_id"] = n < kSetUpCustomers / 2 ? "C1" : "C2";
    (*customer->mutable_attributes())["name"] = "Customer " + std::to_string(n);
    (*customer->mutable_attributes())["credit_limit"] = std::to_string(10000 + 100 * n);
  }
  return out;
}

wire::SubmitRequest OrdersWorkload::Transaction(uint64_t i) {
  wire::SubmitRequest request;
  // 1. Every fifth transaction brings a new customer.
  std::string customer_id;
  int company;  // 0 for C1, 1 for C2
  if (i % 5 == 0) {
    customer_id = "CU-" + std::to_string(i);
    company = i % 2 == 0 ? 0 : 1;
    auto* customer = Add(request, "Customer", wire::NEW);
    (*customer->mutable_keys())["customer_id"] = customer_id;
    (*customer->mutable_attributes())["company_id"] = "C" + std::to_string(company + 1);
    (*customer->mutable_attributes())["name"] = "Customer " + customer_id;
    (*customer->mutable_attributes())["credit_limit"] = std::to_string(5000 + i % 5000);
  } else {
    int n = static_cast<int>((i * 7919) % kSetUpCustomers);
    customer_id = SetUpCustomer(n);
    company = n < kSetUpCustomers / 2 ? 0 : 1;
  }
  // 2. The order, at site i % 3 of the customer's company.
  const int site_number = company * 3 + static_cast<int>(i % 3);
  const std::string site = SiteName(site_number);
  const std::string order_no = "O-" + std::to_string(i);
  auto* order = Add(request, "CustomerOrder", wire::NEW);
  (*order->mutable_keys())["order_no"] = order_no;
  (*order->mutable_attributes())["customer_id"] = customer_id;
  (*order->mutable_attributes())["site_id"] = site;
  char date[16];
  std::snprintf(date, sizeof(date), "2026-%02d-%02d", static_cast<int>(1 + (i / 28) % 12),
                static_cast<int>(1 + i % 28));
  (*order->mutable_attributes())["order_date"] = date;
  (*order->mutable_attributes())["status"] = "Planned";
  // 3. Three lines at the order's site, priced at the item's current unit price.
  for (int line = 1; line <= 3; ++line) {
    const int part = static_cast<int>((i * 31 + line * 17) % kPartsPerSite);
    auto* order_line = Add(request, "CustomerOrderLine", wire::NEW);
    (*order_line->mutable_keys())["order_no"] = order_no;
    (*order_line->mutable_keys())["line_no"] = std::to_string(line);
    (*order_line->mutable_attributes())["site_id"] = site;
    (*order_line->mutable_attributes())["part_no"] = PartNo(part);
    (*order_line->mutable_attributes())["qty"] = std::to_string(1 + (i + line) % 9);
    (*order_line->mutable_attributes())["price"] = Price(unit_price_[site_number][part]);
  }
  // 4. Every tenth transaction raises one item's price.
  if (i % 10 == 0) {
    const int item_site = static_cast<int>(i % kSites);
    const int part = static_cast<int>(i % kPartsPerSite);
    int64_t& price = unit_price_[item_site][part];
    ++price;
    auto* item = Add(request, "Item", wire::MODIFY);
    (*item->mutable_keys())["site_id"] = SiteName(item_site);
    (*item->mutable_keys())["part_no"] = PartNo(part);
    (*item->mutable_attributes())["unit_price"] = Price(price);
  }
  // 5. Every 25th releases the order of 25 transactions ago.
  if (i % 25 == 0 && i > 25) {
    auto* release = Add(request, "CustomerOrder", wire::MODIFY);
    (*release->mutable_keys())["order_no"] = "O-" + std::to_string(i - 25);
    (*release->mutable_attributes())["status"] = "Released";
  }
  return request;
}

}  // namespace ferry
