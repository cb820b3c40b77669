/* wf-yaml2json - print a YAML file as JSON, read with hpcport's own loader
 * (YAML 1.2 core schema), for tools that validate with another
 * implementation. usage: wf-yaml2json FILE; exit 2 if the file does not
 * load (the error line on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include "doc.h"

int main(int argc, char **argv)
{
    struct hp_err err;
    char line[2300];
    if (argc != 2) {
        fprintf(stderr, "usage: wf-yaml2json FILE\n");
        return 2;
    }
    hp_err_init(&err);
    struct hp_doc *doc = hp_doc_load_file(argv[1], NULL, &err);
    if (!doc) {
        hp_err_format(&err, line, sizeof(line));
        fprintf(stderr, "%s\n", line);
        return 2;
    }
    char *s = json_dumps(doc->root, JSON_ENCODE_ANY | JSON_COMPACT);
    puts(s ? s : "null");
    free(s);
    hp_doc_free(doc);
    return 0;
}
