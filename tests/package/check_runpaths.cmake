# coyote_check_runpaths(<what> <file>...): fails unless every ELF file among the arguments carries only absolute or
# $ORIGIN run path entries. An empty or relative entry makes the loader search the working directory. Symbolic links
# and non-ELF files (scripts) are skipped. As a script (cmake -DFILES=<file>|<file>... -P check_runpaths.cmake): the build tree's
# installed targets, which are built with their installed run paths (cmake/CoyoteRpath.cmake).
function(coyote_check_runpaths what)
  foreach(f IN LISTS ARGN)
    if(IS_SYMLINK ${f})
      continue()
    endif()
    file(READ_ELF ${f} RUNPATH runpath RPATH rpath CAPTURE_ERROR not_elf)
    if(not_elf)
      continue() # a script
    endif()
    foreach(entry IN LISTS runpath rpath)
      if(NOT entry MATCHES "^(/|\\$ORIGIN)")
        message(FATAL_ERROR "${what}: ${f} has the run path entry '${entry}' (RUNPATH '${runpath}', RPATH '${rpath}'); "
                            "only absolute and $ORIGIN entries are safe")
      endif()
    endforeach()
    # An empty entry is lost in a CMake list: look at the separators instead.
    foreach(path IN ITEMS "${runpath}" "${rpath}")
      if(path MATCHES "(^;)|(;;)|(;$)")
        message(FATAL_ERROR "${what}: ${f} has an empty run path entry ('${path}'): the working directory")
      endif()
    endforeach()
  endforeach()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  if(NOT FILES)
    message(FATAL_ERROR "check_runpaths.cmake: FILES is not set")
  endif()
  string(REPLACE "|" ";" files "${FILES}")
  coyote_check_runpaths("build-tree run paths" ${files})
  list(LENGTH files n)
  message(STATUS "build-tree run paths: ${n} files checked")
endif()
