/** Environment every process in a sandbox starts with; the sandbox's and the exec's env go on top. */
export const BASE_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/home/user',
  USER: 'user',
  LOGNAME: 'user',
  LANG: 'C.UTF-8',
  SHELL: '/bin/bash',
};
