/* noentry.c - a shared object without the hpcport_adapter symbol. */
int noentry_answer(void);

int noentry_answer(void)
{
    return 42;
}
