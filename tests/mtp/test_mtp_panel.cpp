// The MTP panel drawn from a hand-made history (no model needed).
#include <gtest/gtest.h>

#include <string>

#include "visualizers/mtp_panel.h"

namespace dsv3 {
namespace {

std::vector<model::SpecStep> history() {
  std::vector<model::SpecStep> h(3);
  h[0].prefill = true;
  h[0].position = 3;
  h[0].last_token = 9;
  h[0].emitted = {11};
  // Both drafts accepted: 2 drafts + the bonus.
  h[1].position = 4;
  h[1].last_token = 11;
  h[1].drafts = {{12, 0.9, 0.8, true}, {13, 0.7, 0.6, true}};
  h[1].accepted = 2;
  h[1].bonus = true;
  h[1].emitted = {12, 13, 14};
  // First draft rejected: the second is never examined.
  h[2].position = 7;
  h[2].last_token = 14;
  h[2].drafts = {{20, 0.5, 0.1, false}, {21, 0.4, 0.0, false}};
  h[2].emitted = {15};
  return h;
}

TEST(MtpPanel, ShowsDraftsFatesAndRunningRate) {
  model::SpecStats st;
  st.steps = 2;
  st.step_tokens = 4;
  st.proposed = {2, 2};
  st.accepted = {1, 1};
  viz::MtpPanelOptions o;
  o.draft_depth = 2;
  std::string s = viz::render_plain(viz::mtp_panel(history(), st, o, 90, 10));
  EXPECT_NE(s.find("accept 50% · 2.00 tok/step · 2 steps"), std::string::npos) << s;
  EXPECT_NE(s.find("depth 1"), std::string::npos) << s;
  EXPECT_NE(s.find("✓12 .90·.80"), std::string::npos) << s;
  EXPECT_NE(s.find("✗20 .50·.10"), std::string::npos) << s;
  EXPECT_NE(s.find("·21 .40"), std::string::npos) << s;  // skipped: no target probability shown
  EXPECT_NE(s.find("prefill"), std::string::npos) << s;
  EXPECT_NE(s.find("100%"), std::string::npos) << s;  // running rate after the full accept
  EXPECT_NE(s.find(" 50%"), std::string::npos) << s;  // and after the rejection
}

TEST(MtpPanel, KeepsTheNewestStepsWhenShort) {
  model::SpecStats st;
  viz::MtpPanelOptions o;
  o.draft_depth = 2;
  std::string s = viz::render_plain(viz::mtp_panel(history(), st, o, 90, 6));
  EXPECT_EQ(s.find("prefill"), std::string::npos) << s;  // scrolled off
  EXPECT_NE(s.find("✗20"), std::string::npos) << s;
  // Tiny sizes draw nothing rather than crash.
  EXPECT_EQ(viz::mtp_panel(history(), st, o, 10, 2).width(), 10);
}

}  // namespace
}  // namespace dsv3
