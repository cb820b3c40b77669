/* test-schema.c - error reporting of the schema validator: messages, instance
 * pointers, at_key, did-you-mean suggestions and the choice of the best
 * error for anyOf/oneOf. The keyword semantics themselves are covered by
 * test-schema-suite.c (the official test suite). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "schema.h"
#include "banned.h"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!j)
        fail_msg("bad JSON in test: %s: %s", text, jerr.text);
    return j;
}

static struct hp_schema *compile(const char *schema)
{
    struct hp_err err;
    json_t *js = parse(schema);
    struct hp_schema *s;

    hp_err_init(&err);
    s = hp_schema_new(js, &err);
    json_decref(js);
    if (!s)
        fail_msg("schema did not compile: %s", err.msg);
    return s;
}

/* Validate and return the errors (out->n == 0 when valid); checks that the
 * verdict-only mode agrees. */
static int run(const char *schema, const char *instance, struct hp_verrors *out)
{
    struct hp_schema *s = compile(schema);
    json_t *x = parse(instance);
    int r1 = hp_schema_validate(s, x, NULL);
    int r2 = hp_schema_validate(s, x, out);

    assert_int_equal(r1, r2);
    assert_true(r2 == 0 ? out->n == 0 : out->n > 0);
    json_decref(x);
    hp_schema_free(s);
    return r2;
}

/* The best (first) error must be exactly this. */
static void expect_first(const char *schema, const char *instance, const char *pointer,
                         const char *message, int at_key)
{
    struct hp_verrors e = {0};
    assert_int_equal(run(schema, instance, &e), 1);
    if (strcmp(e.v[0].pointer, pointer) || strcmp(e.v[0].message, message) ||
        e.v[0].at_key != at_key)
        fail_msg("got '%s' '%s' at_key=%d, want '%s' '%s' at_key=%d", e.v[0].pointer,
                 e.v[0].message, e.v[0].at_key, pointer, message, at_key);
    hp_verrors_release(&e);
}

static void expect_valid(const char *schema, const char *instance)
{
    struct hp_verrors e = {0};
    int r = run(schema, instance, &e);
    if (r != 0)
        fail_msg("expected valid, got '%s' at '%s'", e.v[0].message, e.v[0].pointer);
    hp_verrors_release(&e);
}

static void expect_bad_schema(const char *schema, const char *msg_part)
{
    struct hp_err err;
    json_t *js = parse(schema);
    struct hp_schema *s;

    hp_err_init(&err);
    s = hp_schema_new(js, &err);
    json_decref(js);
    assert_null(s);
    assert_int_not_equal(err.code, 0);
    if (!strstr(err.msg, msg_part))
        fail_msg("error '%s' does not mention '%s'", err.msg, msg_part);
}

static const char *task_schema =
    "{\"type\": \"object\", \"additionalProperties\": false,"
    " \"required\": [\"command\"],"
    " \"properties\": {"
    "   \"command\": {\"type\": \"string\"},"
    "   \"cores\": {\"type\": \"integer\", \"minimum\": 1},"
    "   \"memory\": {\"type\": \"string\"},"
    "   \"scheduler\": {\"enum\": [\"slurm\", \"pbs\", \"local\"]},"
    "   \"name\": {\"type\": \"string\", \"pattern\": \"^[a-z]+$\", \"maxLength\": 8},"
    "   \"modules\": {\"type\": \"array\", \"maxItems\": 3, \"uniqueItems\": true,"
    "                 \"items\": {\"type\": \"string\"}}}}";

static void test_type(void **state)
{
    expect_first(task_schema, "{\"command\": \"x\", \"cores\": \"4\"}", "/cores",
                 "expected integer, got string", 0);
    expect_first(task_schema, "[]", "", "expected object, got array", 0);
    expect_first("{\"type\": [\"string\", \"null\"]}", "1.5", "",
                 "expected null or string, got number", 0);
    /* an integral real is an integer (draft-07) */
    expect_valid("{\"type\": \"integer\"}", "4.0");
}

static void test_required(void **state)
{
    expect_first(task_schema, "{\"cores\": 2}", "", "missing required key 'command'", 0);
}

static void test_unknown_key(void **state)
{
    expect_first(task_schema, "{\"command\": \"x\", \"coers\": 4}", "/coers",
                 "unknown key 'coers' (did you mean 'cores'?)", 1);
    expect_first(task_schema, "{\"command\": \"x\", \"walltime\": 4}", "/walltime",
                 "unknown key 'walltime'", 1);
    expect_first("{\"properties\": {\"a\": false}}", "{\"a\": 1}", "/a",
                 "key 'a' is not allowed", 1);
}

static void test_enum_const(void **state)
{
    expect_first(task_schema, "{\"command\": \"x\", \"scheduler\": \"slrum\"}", "/scheduler",
                 "value must be one of: slurm, pbs, local (did you mean 'slurm'?)", 0);
    expect_first(task_schema, "{\"command\": \"x\", \"scheduler\": \"kubernetes\"}",
                 "/scheduler", "value must be one of: slurm, pbs, local", 0);
    expect_first("{\"enum\": [1, \"a\", null]}", "2", "", "value must be one of: 1, a, null", 0);
    expect_first("{\"const\": \"v1\"}", "\"v2\"", "", "value must be 'v1'", 0);
    expect_valid("{\"enum\": [1, 2]}", "1.0");
    expect_valid("{\"const\": {\"a\": [1]}}", "{\"a\": [1.0]}");
}

static void test_numbers(void **state)
{
    expect_first(task_schema, "{\"command\": \"x\", \"cores\": 0}", "/cores", "must be >= 1", 0);
    expect_first("{\"exclusiveMinimum\": 0}", "0", "", "must be > 0", 0);
    expect_first("{\"maximum\": 2.5}", "3", "", "must be <= 2.5", 0);
    expect_first("{\"exclusiveMaximum\": 10}", "10.0", "", "must be < 10", 0);
    expect_first("{\"multipleOf\": 0.01}", "0.075", "", "must be a multiple of 0.01", 0);
    expect_valid("{\"multipleOf\": 0.01}", "0.07");
    expect_valid("{\"multipleOf\": 0.0001}", "0.0075");
    expect_valid("{\"multipleOf\": 3}", "-9");
    expect_first("{\"multipleOf\": 0.1}", "1e-20", "", "must be a multiple of 0.1", 0);
    /* exact comparison of integers beyond 2^53 */
    expect_first("{\"maximum\": 9007199254740992}", "9007199254740993", "",
                 "must be <= 9007199254740992", 0);
}

static void test_strings(void **state)
{
    expect_first(task_schema, "{\"command\": \"x\", \"name\": \"Abc\"}", "/name",
                 "does not match pattern '^[a-z]+$'", 0);
    expect_first(task_schema, "{\"command\": \"x\", \"name\": \"abcdefghi\"}", "/name",
                 "expected at most 8 characters", 0);
    /* code points, not bytes: 8 two-byte characters */
    expect_valid("{\"maxLength\": 8}", "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"");
    expect_first("{\"minLength\": 1}", "\"\"", "", "expected at least 1 character", 0);
    /* ECMA-262: '$' does not match before a final newline; \u escapes */
    expect_first("{\"pattern\": \"^a$\"}", "\"a\\n\"", "", "does not match pattern '^a$'", 0);
    expect_valid("{\"pattern\": \"^\\\\u0041$\"}", "\"A\"");
}

static void test_arrays(void **state)
{
    expect_first(task_schema, "{\"command\": \"x\", \"modules\": [\"a\", \"b\", \"c\", \"d\"]}",
                 "/modules", "expected at most 3 items", 0);
    expect_first(task_schema, "{\"command\": \"x\", \"modules\": [\"a\", 2]}", "/modules/1",
                 "expected string, got integer", 0);
    expect_first(task_schema, "{\"command\": \"x\", \"modules\": [\"a\", \"b\", \"a\"]}",
                 "/modules/2", "duplicate item (same as item 0); items must be unique", 0);
    expect_first("{\"uniqueItems\": true}", "[1, 1.0]", "/1",
                 "duplicate item (same as item 0); items must be unique", 0);
    expect_first("{\"items\": [{}, {}], \"additionalItems\": false}", "[1, 2, 3]", "",
                 "expected at most 2 items", 0);
    expect_first("{\"minItems\": 1}", "[]", "", "expected at least 1 item", 0);
    expect_first("{\"contains\": {\"const\": 1}}", "[2]", "",
                 "expected at least one item matching the 'contains' schema", 0);
}

static void test_objects(void **state)
{
    expect_first("{\"propertyNames\": {\"pattern\": \"^[a-z]+$\"}}", "{\"ok\": 1, \"Bad\": 2}",
                 "/Bad", "invalid key 'Bad': does not match pattern '^[a-z]+$'", 1);
    expect_first("{\"dependencies\": {\"user\": [\"host\"]}}", "{\"user\": \"me\"}", "/user",
                 "key 'user' requires key 'host'", 1);
    expect_first("{\"maxProperties\": 1}", "{\"a\": 1, \"b\": 2}", "",
                 "expected at most 1 key", 0);
    expect_first("{\"patternProperties\": {\"^x-\": {\"type\": \"string\"}}}", "{\"x-a\": 1}",
                 "/x-a", "expected string, got integer", 0);
}

static void test_pointers(void **state)
{
    const char *s = "{\"additionalProperties\": {\"items\": {\"type\": \"integer\"}}}";
    expect_first(s, "{\"a/b\": [1, \"x\"]}", "/a~1b/1", "expected integer, got string", 0);
    expect_first(s, "{\"m~n\": [\"x\"]}", "/m~0n/0", "expected integer, got string", 0);
    expect_first(s, "{\"\": [\"x\"]}", "//0", "expected integer, got string", 0);
}

static void test_deepest_first(void **state)
{
    const char *s =
        "{\"required\": [\"name\"], \"properties\": {"
        " \"tasks\": {\"items\": {\"properties\": {\"cores\": {\"type\": \"integer\"}}}},"
        " \"x\": {\"type\": \"string\"}}}";
    struct hp_verrors e = {0};

    assert_int_equal(run(s, "{\"x\": 1, \"tasks\": [{}, {\"cores\": true}]}", &e), 1);
    assert_int_equal(e.n, 3);
    assert_string_equal(e.v[0].pointer, "/tasks/1/cores");
    assert_string_equal(e.v[1].pointer, "/x");
    assert_string_equal(e.v[2].pointer, "");
    assert_string_equal(e.v[2].message, "missing required key 'name'");
    hp_verrors_release(&e);

    /* identical errors from several branches are reported once */
    assert_int_equal(run("{\"allOf\": [{\"type\": \"string\"}, {\"type\": \"string\"}]}",
                         "1", &e), 1);
    assert_int_equal(e.n, 1);
    hp_verrors_release(&e);
}

static const char *union_schema =
    "{\"oneOf\": ["
    "  {\"type\": \"string\"},"
    "  {\"type\": \"object\", \"required\": [\"command\"], \"additionalProperties\": false,"
    "   \"properties\": {\"command\": {\"type\": \"string\"}, \"cores\": {\"type\": \"integer\"}}}"
    "]}";

static void test_best_match_type(void **state)
{
    expect_first(union_schema, "{\"command\": 3}", "/command", "expected string, got integer", 0);
    expect_first(union_schema, "{\"command\": \"x\", \"coers\": 1}", "/coers",
                 "unknown key 'coers' (did you mean 'cores'?)", 1);
    expect_first(union_schema, "5", "", "expected string or object, got integer", 0);
    expect_valid(union_schema, "\"echo\"");
    /* a const branch counts as its value's type */
    expect_first("{\"anyOf\": [{\"const\": \"auto\"}, {\"type\": \"integer\", \"minimum\": 1}]}",
                 "0", "", "must be >= 1", 0);
    expect_first("{\"anyOf\": [{\"const\": \"auto\"}, {\"type\": \"integer\", \"minimum\": 1}]}",
                 "\"atuo\"", "", "value must be 'auto'", 0);
}

static const char *tagged_schema =
    "{\"definitions\": {"
    "  \"slurm\": {\"type\": \"object\", \"required\": [\"kind\"], \"properties\": {"
    "     \"kind\": {\"const\": \"slurm\"}, \"partition\": {\"type\": \"string\"}}},"
    "  \"pbs\": {\"type\": \"object\", \"required\": [\"kind\"], \"properties\": {"
    "     \"kind\": {\"const\": \"pbs\"}, \"queue\": {\"type\": \"string\"}}}},"
    " \"anyOf\": [{\"$ref\": \"#/definitions/slurm\"}, {\"$ref\": \"#/definitions/pbs\"}]}";

static void test_best_match_discriminator(void **state)
{
    expect_first(tagged_schema, "{\"kind\": \"slurm\", \"partition\": 3}", "/partition",
                 "expected string, got integer", 0);
    expect_first(tagged_schema, "{\"kind\": \"pbs\", \"queue\": []}", "/queue",
                 "expected string, got array", 0);
    expect_first(tagged_schema, "{\"kind\": \"slrum\"}", "/kind",
                 "value must be one of: slurm, pbs (did you mean 'slurm'?)", 0);
    expect_first(tagged_schema, "{\"partition\": \"x\"}", "", "missing required key 'kind'", 0);
    expect_valid(tagged_schema, "{\"kind\": \"pbs\"}");

    /* required keys as the discriminator */
    expect_first("{\"anyOf\": ["
                 "{\"required\": [\"url\"], \"properties\": {\"url\": {\"type\": \"string\"}}},"
                 "{\"required\": [\"path\"], \"properties\": {\"path\": {\"type\": \"string\"}}}]}",
                 "{\"path\": 3}", "/path", "expected string, got integer", 0);
}

static void test_best_match_vague(void **state)
{
    expect_first("{\"anyOf\": [{\"minimum\": 10}, {\"maximum\": 0}]}", "5", "",
                 "value does not match any of the allowed alternatives", 0);
    expect_first("{\"oneOf\": [{\"minimum\": 0}, {\"maximum\": 10}]}", "5", "",
                 "value matches more than one of the allowed alternatives (0 and 1); "
                 "it must match exactly one", 0);
    expect_first("{\"not\": {\"type\": \"null\"}}", "null", "",
                 "value must not match the schema in 'not'", 0);
    expect_first("false", "1", "", "no value is allowed here", 0);
    expect_first("{\"if\": {\"required\": [\"a\"]}, \"then\": {\"required\": [\"b\"]}}",
                 "{\"a\": 1}", "", "missing required key 'b'", 0);
}

static void test_refs(void **state)
{
    /* recursion through "#" */
    const char *tree = "{\"type\": \"object\", \"properties\": {\"kids\": {\"type\": \"array\","
                       " \"items\": {\"$ref\": \"#\"}}, \"v\": {\"type\": \"integer\"}}}";
    expect_first(tree, "{\"kids\": [{\"kids\": [{\"v\": \"x\"}]}]}", "/kids/0/kids/0/v",
                 "expected integer, got string", 0);
    /* escaped and percent-encoded pointers */
    expect_valid("{\"definitions\": {\"a b/c~\": {\"type\": \"string\"}},"
                 " \"$ref\": \"#/definitions/a%20b~1c~0\"}", "\"s\"");
    /* "$id" changes the base: "#/definitions/x" means the inner document's */
    const char *ids =
        "{\"$id\": \"http://example.com/root.json\","
        " \"definitions\": {\"x\": {\"type\": \"string\"},"
        "   \"inner\": {\"$id\": \"inner.json\", \"definitions\": {\"x\": {\"type\": \"integer\"}},"
        "              \"allOf\": [{\"$ref\": \"#/definitions/x\"}]},"
        "   \"anchored\": {\"$id\": \"#tag\", \"type\": \"boolean\"}},"
        " \"properties\": {\"a\": {\"$ref\": \"inner.json\"},"
        "                \"b\": {\"$ref\": \"#/definitions/x\"},"
        "                \"c\": {\"$ref\": \"http://example.com/inner.json#/definitions/x\"},"
        "                \"d\": {\"$ref\": \"#tag\"}}}";
    expect_valid(ids, "{\"a\": 1, \"b\": \"s\", \"c\": 2, \"d\": true}");
    expect_first(ids, "{\"d\": 1}", "/d", "expected boolean, got integer", 0);

    expect_bad_schema("{\"$ref\": \"#/definitions/nope\"}", "points to nothing");
    expect_bad_schema("{\"$ref\": \"http://example.com/other.json\"}",
                      "remote references are not supported");
    expect_bad_schema("{\"properties\": {\"a\": {\"pattern\": \"(\"}}}", "bad regular expression");
    expect_bad_schema("{\"type\": \"integr\"}", "unknown type 'integr'");
    expect_bad_schema("{\"minLength\": -1}", "non-negative integer");
    expect_bad_schema("{\"properties\": {\"a\": 3}}", "must be an object or a boolean");
}

static void test_circular_ref(void **state)
{
    struct hp_verrors e = {0};
    struct hp_schema *s = compile("{\"definitions\": {\"a\": {\"$ref\": \"#/definitions/b\"},"
                                  " \"b\": {\"$ref\": \"#/definitions/a\"}},"
                                  " \"$ref\": \"#/definitions/a\"}");
    json_t *x = json_integer(1);
    assert_int_equal(hp_schema_validate(s, x, NULL), -1);
    assert_int_equal(hp_schema_validate(s, x, &e), -1);
    assert_true(e.n == 1 && strstr(e.v[0].message, "internal error"));
    hp_verrors_release(&e);
    hp_schema_free(s);
    s = compile("{\"allOf\": [{\"$ref\": \"#\"}]}");
    assert_int_equal(hp_schema_validate(s, x, NULL), -1);
    json_decref(x);
    hp_schema_free(s);
}

static void test_builtin(void **state)
{
    struct hp_err err;
    const struct hp_schema *a, *b;

    hp_err_init(&err);
    a = hp_schema_builtin("workflow", &err);
    assert_non_null(a);
    b = hp_schema_builtin("workflow", &err);
    assert_ptr_equal(a, b);
    assert_non_null(hp_schema_builtin("site", &err));
    assert_non_null(hp_schema_builtin_text("site"));
    assert_null(hp_schema_builtin_text("nope"));
    assert_null(hp_schema_builtin("nope", &err));
    assert_int_not_equal(err.code, 0);
    hp_schema_free(NULL);
    hp_verrors_release(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_enum_const),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_objects),
        cmocka_unit_test(test_pointers),
        cmocka_unit_test(test_deepest_first),
        cmocka_unit_test(test_best_match_type),
        cmocka_unit_test(test_best_match_discriminator),
        cmocka_unit_test(test_best_match_vague),
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_circular_ref),
        cmocka_unit_test(test_builtin),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
