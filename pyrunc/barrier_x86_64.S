# pyrunc's start barrier: argv = [name, FIFO_FD, PATH, ARGV0, ARGS...]
# read(FIFO_FD, 1 byte) blocks until `pyrunc start` writes; close(FIFO_FD);
# execve(PATH, &ARGV0, envp); on failure: a message on stderr and exit 127.
    .globl _start
    .text
_start:
    mov     %rsp, %rbx              # rbx -> argc
    mov     (%rbx), %r12            # r12 = argc
    mov     16(%rbx), %rsi          # argv[1]: the fd, in decimal
    xor     %edi, %edi
1:  movzbl  (%rsi), %eax
    test    %al, %al
    jz      2f
    sub     $48, %eax
    imul    $10, %edi, %edi
    add     %eax, %edi
    inc     %rsi
    jmp     1b
2:  mov     %edi, %r13d             # r13 = fd
    sub     $16, %rsp
3:  mov     %r13d, %edi
    mov     %rsp, %rsi
    mov     $1, %edx
    xor     %eax, %eax              # read
    syscall
    cmp     $-4, %rax               # EINTR: read again
    je      3b
    mov     %r13d, %edi
    mov     $3, %eax                # close
    syscall
    mov     24(%rbx), %rdi          # argv[2]: the path
    lea     32(%rbx), %rsi          # &argv[3]
    lea     16(%rbx,%r12,8), %rdx   # envp = &argv[argc + 1]
    mov     $59, %eax               # execve
    syscall
    mov     $2, %edi
    lea     msg(%rip), %rsi
    mov     $msglen, %edx
    mov     $1, %eax                # write
    syscall
    mov     $127, %edi
    mov     $231, %eax              # exit_group
    syscall
msg:
    .ascii  "pyrunc: exec of the container process failed\n"
    .set    msglen, . - msg
