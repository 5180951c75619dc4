# pyrunc's start barrier: argv = [name, FIFO_FD, BPF_FD, FLAGS, PATH, ARGV0, ARGS...]
# read(FIFO_FD, 1 byte) blocks until `pyrunc start` writes; close(FIFO_FD);
# when BPF_FD is not "-": pread the seccomp filter (raw BPF) from it, close it and load it with
# seccomp(SECCOMP_SET_MODE_FILTER, FLAGS): after that only execve runs under the filter;
# execve(PATH, &ARGV0, envp); on failure: a message on stderr and exit 127.
    .globl _start
    .text
_start:
    mov     %rsp, %rbx              # rbx -> argc
    mov     (%rbx), %r12            # r12 = argc
    cmp     $6, %r12                # run as anything but pyrunc's barrier (a #!/proc/self/exe
    jl      fail_exec               # script names this memfd): fail, touch nothing
    mov     16(%rbx), %rsi          # argv[1]: the fifo fd
    call    atoi
    mov     %edi, %r13d             # r13 = fifo fd
    sub     $16, %rsp               # one byte for read, then the struct sock_fprog
1:  mov     %r13d, %edi
    mov     %rsp, %rsi
    mov     $1, %edx
    xor     %eax, %eax              # read
    syscall
    cmp     $-4, %rax               # EINTR: read again
    je      1b
    mov     %r13d, %edi
    mov     $3, %eax                # close
    syscall
    mov     24(%rbx), %rsi          # argv[2]: the filter's fd, or "-"
    cmpb    $'-', (%rsi)
    je      2f
    call    atoi
    mov     %edi, %r14d             # r14 = filter fd
    mov     32(%rbx), %rsi          # argv[3]: the seccomp flags
    call    atoi
    mov     %edi, %r15d             # r15 = flags
    mov     %r14d, %edi
    lea     prog(%rip), %rsi
    mov     $proglen, %edx
    xor     %r10d, %r10d
    mov     $17, %eax               # pread64(fd, prog, proglen, 0)
    syscall
    test    %rax, %rax
    jle     fail_seccomp
    shr     $3, %rax                # 8 bytes a BPF instruction
    mov     %ax, (%rsp)             # sock_fprog.len
    lea     prog(%rip), %rcx
    mov     %rcx, 8(%rsp)           # sock_fprog.filter
    mov     %r14d, %edi
    mov     $3, %eax                # close
    syscall
    mov     $1, %edi                # SECCOMP_SET_MODE_FILTER
    mov     %r15d, %esi
    mov     %rsp, %rdx
    mov     $317, %eax              # seccomp
    syscall
    test    %rax, %rax
    jnz     fail_seccomp
2:  mov     40(%rbx), %rdi          # argv[4]: the path
    lea     48(%rbx), %rsi          # &argv[5]
    lea     16(%rbx,%r12,8), %rdx   # envp = &argv[argc + 1]
    mov     $59, %eax               # execve
    syscall
fail_exec:
    lea     msg(%rip), %rsi
    mov     $msglen, %edx
    jmp     die
fail_seccomp:
    lea     smsg(%rip), %rsi
    mov     $smsglen, %edx
die:
    mov     $2, %edi
    mov     $1, %eax                # write
    syscall
    mov     $127, %edi
    mov     $231, %eax              # exit_group
    syscall

# atoi: the decimal string at rsi -> edi
atoi:
    xor     %edi, %edi
3:  movzbl  (%rsi), %eax
    test    %al, %al
    jz      4f
    sub     $48, %eax
    imul    $10, %edi, %edi
    add     %eax, %edi
    inc     %rsi
    jmp     3b
4:  ret

msg:
    .ascii  "pyrunc: exec of the container process failed\n"
    .set    msglen, . - msg
smsg:
    .ascii  "pyrunc: loading the seccomp filter failed\n"
    .set    smsglen, . - smsg

    .set    proglen, 32768          # BPF_MAXINSNS (4096) instructions of 8 bytes
    .lcomm  prog, proglen
