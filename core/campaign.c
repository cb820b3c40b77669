/* core/campaign.c: being written */ typedef int hp_stub_campaign_t;
