/* banned.h - functions that must not be used in hpcport (after git's banned.h).
 * Included last by every .c file through core/hp.h. */
#ifndef HP_BANNED_H
#define HP_BANNED_H

#define HP_BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) HP_BANNED(strcpy)
#undef strcat
#define strcat(x, y) HP_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) HP_BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) HP_BANNED(strncat)
#undef sprintf
#define sprintf(...) HP_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) HP_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) HP_BANNED(strtok)
#undef gets
#define gets(x) HP_BANNED(gets)

#endif
