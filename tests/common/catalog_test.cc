// The catalog: loading and checking the master configuration (every broken configuration
// rejected with an error naming the offender), checking LU changes against it, routing rows
// to replica sites, and the configuration digest.
#include "common/catalog.h"

#include <gmock/gmock.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;

using testing::Change;

// The deployed catalog, and copies of its configuration to break one thing at a time.
class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
    ASSERT_OK(catalog.status());
    catalog_ = *catalog;
  }

  config::MasterConfiguration Deployed() const { return catalog_->proto(); }

  static config::LogicalUnit* MutableLu(config::MasterConfiguration& config,
                                        const std::string& name) {
    for (auto& lu : *config.mutable_lus()) {
      if (lu.name() == name) return &lu;
    }
    ADD_FAILURE() << "no LU " << name;
    return config.add_lus();
  }

  // Why FromProto refuses `config`; fails the test if it accepts it.
  static std::string Rejection(config::MasterConfiguration config) {
    auto catalog = Catalog::FromProto(std::move(config));
    EXPECT_FALSE(catalog.ok()) << "the configuration was accepted";
    if (catalog.ok()) return "";
    EXPECT_EQ(catalog.status().code(), Status::Code::kInvalidArgument);
    return catalog.status().message();
  }

  // Writes `text` to a file of the temp dir and loads it.
  StatusOr<std::shared_ptr<const Catalog>> LoadText(const std::string& name,
                                                    const std::string& text) {
    std::ofstream(dir_.File(name)) << text;
    return Catalog::Load(dir_.File(name));
  }

  // Why ValidateChange refuses `change`; fails the test if it accepts it.
  std::string ChangeRejection(const wire::LuChange& change) const {
    Status status = catalog_->ValidateChange(change);
    EXPECT_FALSE(status.ok()) << change.ShortDebugString() << " was accepted";
    EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
    return status.message();
  }

  bool Routes(const std::string& replica, const std::string& lu, const Row& row) const {
    const config::ReplicaSite* site = catalog_->FindReplica(replica);
    const config::LogicalUnit* unit = catalog_->FindLu(lu);
    EXPECT_NE(site, nullptr) << replica;
    EXPECT_NE(unit, nullptr) << lu;
    return site && unit && catalog_->RoutesTo(*site, *unit, row);
  }

  testing::TempDir dir_;
  std::shared_ptr<const Catalog> catalog_;
};

// ---- Loading.

TEST_F(CatalogTest, DeployedConfigurationLoads) {
  EXPECT_EQ(catalog_->proto().master_site(), "MASTER");
  EXPECT_EQ(catalog_->proto().lus_size(), 6);
  for (const char* lu :
       {"Company", "Site", "Customer", "Item", "CustomerOrder", "CustomerOrderLine"}) {
    EXPECT_NE(catalog_->FindLu(lu), nullptr) << lu;
  }
  ASSERT_EQ(catalog_->proto().replicas_size(), 2);
  EXPECT_NE(catalog_->FindReplica("SITE-A"), nullptr);
  EXPECT_NE(catalog_->FindReplica("SITE-B"), nullptr);
  EXPECT_EQ(catalog_->FindReplica("SITE-C"), nullptr);
  EXPECT_EQ(catalog_->FindLu("Invoice"), nullptr);
}

TEST_F(CatalogTest, FindAttributeFindsOnlyTheLusOwnAttributes) {
  const config::LogicalUnit* item = catalog_->FindLu("Item");
  ASSERT_NE(item, nullptr);
  const config::Attribute* price = catalog_->FindAttribute(*item, "unit_price");
  ASSERT_NE(price, nullptr);
  EXPECT_EQ(price->type(), config::REAL);
  EXPECT_EQ(catalog_->FindAttribute(*item, "credit_limit"), nullptr);
}

TEST_F(CatalogTest, ReferencesToListsTheReferencingLus) {
  auto references = catalog_->ReferencesTo("Company");
  std::vector<std::string> names;
  for (const auto& [lu, reference] : references) {
    names.push_back(lu->name());
    EXPECT_EQ(reference->lu(), "Company");
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"Customer", "Site"}));
  EXPECT_TRUE(catalog_->ReferencesTo("CustomerOrderLine").empty());
}

TEST_F(CatalogTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = dir_.File("no_such_configuration.txtpb");
  auto catalog = Catalog::Load(path);
  ASSERT_FALSE(catalog.ok());
  EXPECT_EQ(catalog.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(catalog.status().message(), HasSubstr(path));
}

TEST_F(CatalogTest, SyntaxErrorNamesTheLine) {
  auto catalog = LoadText("broken.txtpb",
                          "master_site: \"MASTER\"\n"
                          "lus { name: \"Company\" attributes { name: \"company_id\" }\n"
                          "  key: company_id\n"  // an unquoted string: a syntax error
                          "}\n");
  ASSERT_FALSE(catalog.ok());
  EXPECT_THAT(catalog.status().message(), HasSubstr("line 3"));
  EXPECT_THAT(catalog.status().message(), HasSubstr(dir_.File("broken.txtpb")));
}

TEST_F(CatalogTest, LoadNamesTheFileOfAnInvalidConfiguration) {
  auto catalog = LoadText("duplicate.txtpb",
                          "master_site: \"MASTER\"\n"
                          "lus { name: \"Company\" attributes { name: \"company_id\" }\n"
                          "      key: \"company_id\" }\n"
                          "lus { name: \"Company\" attributes { name: \"company_id\" }\n"
                          "      key: \"company_id\" }\n");
  ASSERT_FALSE(catalog.ok());
  EXPECT_THAT(catalog.status().message(), HasSubstr(dir_.File("duplicate.txtpb")));
  EXPECT_THAT(catalog.status().message(), HasSubstr("LU Company is defined twice"));
}

// ---- Broken configurations, each naming the offender.

TEST_F(CatalogTest, RejectsDuplicateLu) {
  config::MasterConfiguration config = Deployed();
  *config.add_lus() = *catalog_->FindLu("Site");
  EXPECT_THAT(Rejection(config), HasSubstr("LU Site is defined twice"));
}

TEST_F(CatalogTest, RejectsKeyThatIsNotAnAttribute) {
  config::MasterConfiguration config = Deployed();
  MutableLu(config, "Company")->set_key(0, "company_code");
  std::string message = Rejection(config);
  EXPECT_THAT(message, HasSubstr("LU Company"));
  EXPECT_THAT(message, HasSubstr("'company_code'"));
}

TEST_F(CatalogTest, RejectsLuWithNoKey) {
  config::MasterConfiguration config = Deployed();
  MutableLu(config, "Customer")->clear_key();
  EXPECT_THAT(Rejection(config), HasSubstr("LU Customer has no key"));
}

TEST_F(CatalogTest, RejectsKeyListedTwice) {
  config::MasterConfiguration config = Deployed();
  MutableLu(config, "Customer")->add_key("customer_id");
  EXPECT_THAT(Rejection(config), HasSubstr("LU Customer: key 'customer_id' is listed twice"));
}

TEST_F(CatalogTest, RejectsReferenceToUnknownLu) {
  config::MasterConfiguration config = Deployed();
  MutableLu(config, "Site")->mutable_references(0)->set_lu("Nation");
  std::string message = Rejection(config);
  EXPECT_THAT(message, HasSubstr("LU Site"));
  EXPECT_THAT(message, HasSubstr("'Nation'"));
}

TEST_F(CatalogTest, RejectsReferenceWithWrongNumberOfAttributes) {
  config::MasterConfiguration config = Deployed();
  // Item's key has two attributes; the order line names only one of them.
  config::LogicalUnit* line = MutableLu(config, "CustomerOrderLine");
  for (auto& reference : *line->mutable_references()) {
    if (reference.lu() == "Item") reference.mutable_attributes()->RemoveLast();
  }
  std::string message = Rejection(config);
  EXPECT_THAT(message, HasSubstr("LU CustomerOrderLine"));
  EXPECT_THAT(message, HasSubstr("reference to Item names 1 attributes"));
}

TEST_F(CatalogTest, RejectsReferenceUsingAnAttributeThatDoesNotExist) {
  config::MasterConfiguration config = Deployed();
  MutableLu(config, "CustomerOrder")->mutable_references(0)->set_attributes(0, "client_id");
  std::string message = Rejection(config);
  EXPECT_THAT(message, HasSubstr("LU CustomerOrder"));
  EXPECT_THAT(message, HasSubstr("'client_id'"));
}

TEST_F(CatalogTest, RejectsCompanyAttributeThatIsNotAnAttribute) {
  config::MasterConfiguration config = Deployed();
  MutableLu(config, "Item")->set_company_attribute("company_id");
  std::string message = Rejection(config);
  EXPECT_THAT(message, HasSubstr("LU Item"));
  EXPECT_THAT(message, HasSubstr("company_attribute 'company_id'"));
}

TEST_F(CatalogTest, RejectsReplicaGettingUnknownLu) {
  config::MasterConfiguration config = Deployed();
  config.mutable_replicas(1)->add_lus("Invoice");
  std::string message = Rejection(config);
  EXPECT_THAT(message, HasSubstr("SITE-B"));
  EXPECT_THAT(message, HasSubstr("'Invoice'"));
}

TEST_F(CatalogTest, RejectsDuplicateReplica) {
  config::MasterConfiguration config = Deployed();
  *config.add_replicas() = config.replicas(0);
  EXPECT_THAT(Rejection(config), HasSubstr("replica site SITE-A is defined twice"));
}

TEST_F(CatalogTest, RejectsLuNameThatIsNotAnIdentifier) {
  config::MasterConfiguration config = Deployed();
  config::LogicalUnit* lu = config.add_lus();
  lu->set_name("bad name");
  lu->add_attributes()->set_name("id");
  lu->add_key("id");
  EXPECT_THAT(Rejection(config), HasSubstr("'bad name'"));
}

TEST_F(CatalogTest, RejectsAttributeNameThatIsNotAnIdentifier) {
  config::MasterConfiguration config = Deployed();
  MutableLu(config, "Customer")->add_attributes()->set_name("credit; DROP TABLE x");
  std::string message = Rejection(config);
  EXPECT_THAT(message, HasSubstr("LU Customer"));
  EXPECT_THAT(message, HasSubstr("'credit; DROP TABLE x'"));
}

TEST_F(CatalogTest, RejectsMissingMasterSite) {
  config::MasterConfiguration config = Deployed();
  config.clear_master_site();
  EXPECT_THAT(Rejection(config), HasSubstr("master_site"));
}

// ---- ValidateChange.

TEST_F(CatalogTest, ValidateChangeAcceptsValidChanges) {
  EXPECT_OK(catalog_->ValidateChange(
      Change("Customer", wire::NEW, {{"customer_id", "CU-1"}},
             {{"company_id", "C1"}, {"name", "Customer 1"}, {"credit_limit", "5000"}})));
  EXPECT_OK(catalog_->ValidateChange(Change("Item", wire::MODIFY,
                                            {{"site_id", "C1-S1"}, {"part_no", "P-001"}},
                                            {{"unit_price", "12.50"}})));
  EXPECT_OK(catalog_->ValidateChange(
      Change("CustomerOrderLine", wire::REMOVE, {{"order_no", "O-1"}, {"line_no", "3"}})));
}

TEST_F(CatalogTest, ValidateChangeRejectsUnknownLu) {
  EXPECT_THAT(ChangeRejection(Change("Invoice", wire::NEW, {{"invoice_no", "I-1"}})),
              HasSubstr("unknown LU 'Invoice'"));
}

TEST_F(CatalogTest, ValidateChangeRejectsMissingAction) {
  std::string message =
      ChangeRejection(Change("Customer", wire::ACTION_UNSPECIFIED, {{"customer_id", "CU-1"}}));
  EXPECT_THAT(message, HasSubstr("Customer[customer_id=CU-1]"));
  EXPECT_THAT(message, HasSubstr("no action"));
}

TEST_F(CatalogTest, ValidateChangeRejectsMissingKeyAttribute) {
  std::string message =
      ChangeRejection(Change("Item", wire::NEW, {{"site_id", "C1-S1"}}, {{"unit_price", "1.00"}}));
  EXPECT_THAT(message, HasSubstr("Item[site_id=C1-S1]"));
  EXPECT_THAT(message, HasSubstr("key attribute part_no is missing"));
}

TEST_F(CatalogTest, ValidateChangeRejectsEmptyKeyValue) {
  std::string message = ChangeRejection(Change("Customer", wire::REMOVE, {{"customer_id", ""}}));
  EXPECT_THAT(message, HasSubstr("Customer[customer_id=]"));
  EXPECT_THAT(message, HasSubstr("key attribute customer_id"));
}

TEST_F(CatalogTest, ValidateChangeRejectsNonKeyAttributeInKeys) {
  std::string message = ChangeRejection(
      Change("Customer", wire::REMOVE, {{"customer_id", "CU-1"}, {"company_id", "C1"}}));
  EXPECT_THAT(message, HasSubstr("Customer[company_id=C1, customer_id=CU-1]"));
  EXPECT_THAT(message, HasSubstr("company_id is not a key attribute of Customer"));
}

TEST_F(CatalogTest, ValidateChangeRejectsUnknownAttribute) {
  std::string message = ChangeRejection(
      Change("Customer", wire::MODIFY, {{"customer_id", "CU-1"}}, {{"colour", "blue"}}));
  EXPECT_THAT(message, HasSubstr("Customer[customer_id=CU-1]"));
  EXPECT_THAT(message, HasSubstr("unknown attribute 'colour'"));
}

TEST_F(CatalogTest, ValidateChangeRejectsKeyGivenAsAttribute) {
  std::string message = ChangeRejection(
      Change("Customer", wire::MODIFY, {{"customer_id", "CU-1"}}, {{"customer_id", "CU-2"}}));
  EXPECT_THAT(message, HasSubstr("Customer[customer_id=CU-1]"));
  EXPECT_THAT(message, HasSubstr("key attribute customer_id belongs in keys"));
}

TEST_F(CatalogTest, ValidateChangeRejectsModifyWithNoAttributes) {
  std::string message =
      ChangeRejection(Change("Customer", wire::MODIFY, {{"customer_id", "CU-1"}}));
  EXPECT_THAT(message, HasSubstr("Customer[customer_id=CU-1]"));
  EXPECT_THAT(message, HasSubstr("MODIFY names no attribute"));
}

TEST_F(CatalogTest, ValidateChangeRejectsRemoveWithAttributes) {
  std::string message = ChangeRejection(
      Change("Customer", wire::REMOVE, {{"customer_id", "CU-1"}}, {{"name", "Gone"}}));
  EXPECT_THAT(message, HasSubstr("Customer[customer_id=CU-1]"));
  EXPECT_THAT(message, HasSubstr("REMOVE takes only the key"));
}

TEST_F(CatalogTest, ValidateChangeRejectsIntegerAttributeThatIsNotAnInteger) {
  std::string message = ChangeRejection(
      Change("Customer", wire::MODIFY, {{"customer_id", "CU-1"}}, {{"credit_limit", "12x"}}));
  EXPECT_THAT(message, HasSubstr("Customer[customer_id=CU-1]"));
  EXPECT_THAT(message, HasSubstr("credit_limit value '12x' is not INTEGER"));
}

TEST_F(CatalogTest, ValidateChangeRejectsRealAttributeThatIsNotANumber) {
  std::string message = ChangeRejection(Change(
      "Item", wire::MODIFY, {{"site_id", "C1-S1"}, {"part_no", "P-001"}}, {{"unit_price", "abc"}}));
  EXPECT_THAT(message, HasSubstr("Item[part_no=P-001, site_id=C1-S1]"));
  EXPECT_THAT(message, HasSubstr("unit_price value 'abc' is not REAL"));
}

TEST_F(CatalogTest, ValidateChangeRejectsIntegerKeyThatIsNotAnInteger) {
  std::string message = ChangeRejection(
      Change("CustomerOrderLine", wire::REMOVE, {{"order_no", "O-1"}, {"line_no", "one"}}));
  EXPECT_THAT(message, HasSubstr("line_no value 'one' is not INTEGER"));
}

// ---- Routing.

TEST_F(CatalogTest, CustomerRoutesByItsCompany) {
  Row customer = {{"customer_id", "CU-1"}, {"company_id", "C1"}, {"name", "One"}};
  EXPECT_TRUE(Routes("SITE-A", "Customer", customer));
  EXPECT_FALSE(Routes("SITE-B", "Customer", customer));
}

TEST_F(CatalogTest, ItemRoutesByItsSite) {
  Row item = {{"site_id", "C2-S1"}, {"part_no", "P-000"}, {"unit_price", "10.00"}};
  EXPECT_FALSE(Routes("SITE-A", "Item", item));
  EXPECT_TRUE(Routes("SITE-B", "Item", item));
}

TEST_F(CatalogTest, CompanyRoutesToItsOwnSiteOnly) {
  Row company = {{"company_id", "C2"}, {"name", "Company 2"}};
  EXPECT_FALSE(Routes("SITE-A", "Company", company));
  EXPECT_TRUE(Routes("SITE-B", "Company", company));
}

TEST_F(CatalogTest, NothingRoutesToAReplicaThatDoesNotGetTheLu) {
  config::MasterConfiguration config = Deployed();
  config.mutable_replicas(0)->clear_lus();
  config.mutable_replicas(0)->add_lus("Company");
  auto catalog = Catalog::FromProto(config);
  ASSERT_OK(catalog.status());
  const config::ReplicaSite* site_a = (*catalog)->FindReplica("SITE-A");
  ASSERT_NE(site_a, nullptr);
  Row item = {{"site_id", "C1-S1"}, {"part_no", "P-000"}};
  EXPECT_FALSE((*catalog)->RoutesTo(*site_a, *(*catalog)->FindLu("Item"), item));
  EXPECT_TRUE(
      (*catalog)->RoutesTo(*site_a, *(*catalog)->FindLu("Company"), {{"company_id", "C1"}}));
}

// ---- Digest.

TEST_F(CatalogTest, DigestIsStableForEqualConfigurations) {
  auto again = Catalog::Load(testing::DeployedMasterConfiguration());
  ASSERT_OK(again.status());
  auto from_proto = Catalog::FromProto(Deployed());
  ASSERT_OK(from_proto.status());
  EXPECT_FALSE(catalog_->Digest().empty());
  EXPECT_EQ((*again)->Digest(), catalog_->Digest());
  EXPECT_EQ((*from_proto)->Digest(), catalog_->Digest());
}

TEST_F(CatalogTest, DigestChangesWhenTheConfigurationChanges) {
  config::MasterConfiguration config = Deployed();
  config.mutable_replicas(1)->add_sites("C2-S4");
  auto changed = Catalog::FromProto(config);
  ASSERT_OK(changed.status());
  EXPECT_NE((*changed)->Digest(), catalog_->Digest());
}

// ---- ValueFitsType.

TEST(ValueFitsTypeTest, Integer) {
  EXPECT_TRUE(ValueFitsType("12", config::INTEGER));
  EXPECT_TRUE(ValueFitsType("-3", config::INTEGER));
  EXPECT_TRUE(ValueFitsType("0", config::INTEGER));
  EXPECT_FALSE(ValueFitsType("12x", config::INTEGER));
  EXPECT_FALSE(ValueFitsType("12.50", config::INTEGER));
  EXPECT_FALSE(ValueFitsType("", config::INTEGER));
  EXPECT_FALSE(ValueFitsType("abc", config::INTEGER));
  EXPECT_FALSE(ValueFitsType("99999999999999999999", config::INTEGER));  // overflows int64
}

TEST(ValueFitsTypeTest, Real) {
  EXPECT_TRUE(ValueFitsType("12.50", config::REAL));
  EXPECT_TRUE(ValueFitsType("-3", config::REAL));
  EXPECT_TRUE(ValueFitsType("1e3", config::REAL));
  EXPECT_FALSE(ValueFitsType("abc", config::REAL));
  EXPECT_FALSE(ValueFitsType("12.5.1", config::REAL));
  // Forms strtod takes but a sender never means as a price or a quantity.
  for (const char* odd : {"nan", "inf", "0x10", " 12", "12 ", "1.", ".5", "1e"}) {
    EXPECT_FALSE(ValueFitsType(odd, config::REAL)) << odd;
  }
  EXPECT_FALSE(ValueFitsType(" 12", config::INTEGER));
  EXPECT_FALSE(ValueFitsType("+5", config::INTEGER));
  EXPECT_FALSE(ValueFitsType("", config::REAL));
  EXPECT_FALSE(ValueFitsType("1e999", config::REAL)) << "infinite as a double";
  EXPECT_FALSE(ValueFitsType("-1e999", config::REAL));
  EXPECT_TRUE(ValueFitsType("1e308", config::REAL));
}

// ---- SelfReferencedRowsFirst.

// An employee's manager is an employee: a row referencing its own LU.
config::LogicalUnit EmployeeLu() {
  config::LogicalUnit lu;
  lu.set_name("Employee");
  lu.add_attributes()->set_name("employee_id");
  lu.add_attributes()->set_name("manager_id");
  lu.add_key("employee_id");
  config::Reference* manager = lu.add_references();
  manager->set_lu("Employee");
  manager->add_attributes("manager_id");
  return lu;
}

std::vector<std::string> Ids(const std::vector<Row>& rows) {
  std::vector<std::string> ids;
  for (const auto& row : rows) ids.push_back(row.at("employee_id"));
  return ids;
}

TEST(SelfReferencedRowsFirstTest, ARowComesAfterTheRowItReferences) {
  const config::LogicalUnit lu = EmployeeLu();
  EXPECT_TRUE(ReferencesItself(lu));
  // Key order: A (managed by Z, managed by M), B (no manager), M (managed by B), Z.
  std::vector<Row> rows = {{{"employee_id", "A"}, {"manager_id", "Z"}},
                           {{"employee_id", "B"}},
                           {{"employee_id", "M"}, {"manager_id", "B"}},
                           {{"employee_id", "Z"}, {"manager_id", "M"}},
                           {{"employee_id", "Q"}, {"manager_id", "gone"}}};
  EXPECT_EQ(Ids(SelfReferencedRowsFirst(lu, rows)),
            (std::vector<std::string>{"B", "Q", "M", "Z", "A"}));
}

TEST(SelfReferencedRowsFirstTest, RowsInACycleComeLastAndNoneIsLost) {
  const config::LogicalUnit lu = EmployeeLu();
  std::vector<Row> rows = {{{"employee_id", "X"}, {"manager_id", "Y"}},
                           {{"employee_id", "Y"}, {"manager_id", "X"}},
                           {{"employee_id", "S"}, {"manager_id", "S"}},  // its own manager
                           {{"employee_id", "T"}}};
  EXPECT_EQ(Ids(SelfReferencedRowsFirst(lu, rows)), (std::vector<std::string>{"S", "T", "X", "Y"}));
}

TEST(SelfReferencedRowsFirstTest, TheDeployedLusReferenceNoneOfThemselves) {
  auto catalog = Catalog::Load(testing::DeployedMasterConfiguration());
  ASSERT_OK(catalog.status());
  for (const auto& lu : (*catalog)->proto().lus()) EXPECT_FALSE(ReferencesItself(lu)) << lu.name();
}

TEST(ValueFitsTypeTest, TextTakesAnything) {
  EXPECT_TRUE(ValueFitsType("", config::TEXT));
  EXPECT_TRUE(ValueFitsType("12x", config::TEXT));
  EXPECT_TRUE(ValueFitsType("any text at all", config::TEXT));
}

}  // namespace
}  // namespace ferry
