/* core/workflow.c: being written */ typedef int hp_stub_workflow_t;
