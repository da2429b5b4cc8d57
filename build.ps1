#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Vigil's developer verbs for PowerShell (Windows or Linux): the same ones as the Makefile.
.EXAMPLE
    ./build.ps1 build      # restore, build every project and the EFI images
    ./build.ps1 test       # unit tests + emulator boots (QEMU and Bochs)
    ./build.ps1 run        # boot QEMU (AMD SVM model) with the guest console here
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('build', 'generate', 'check-generated', 'payload', 'guest', 'image', 'test', 'unit-test', 'emulator-test', 'run', 'run-bochs', 'run-kvm', 'bench', 'clean', 'deps')]
    [string] $Verb = 'build',
    [string] $Configuration = 'Release'
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot

$tool = "out/artifacts/bin/Vigil.Tool/$($Configuration.ToLowerInvariant())/vigil.dll"
$tests = 'tests/Vigil.Tests'

function Invoke-Step([string] $Program, [string[]] $Arguments) {
    Write-Host "> $Program $($Arguments -join ' ')"
    & $Program @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Program failed with exit code $LASTEXITCODE" }
}

function Invoke-Deps {
    if ($IsLinux) {
        Invoke-Step 'bash' @('tools/install-deps.sh')
    } else {
        Write-Warning 'Not Linux: install lld-link (LLVM), QEMU and Bochs yourself; the test guest builder needs Debian tools.'
    }
    Invoke-Step 'dotnet' @('restore', 'Vigil.slnx')
}

function Invoke-Build {
    Invoke-Deps
    Invoke-Step 'dotnet' @('build', 'Vigil.slnx', '-c', $Configuration, '--no-restore')
    # The default policy (every ESP the tools build carries it as \EFI\vigil\default.pol).
    Invoke-Step 'dotnet' @($tool, 'policy', 'compile', 'policy/default.policy', '--out', 'out/efi/default.pol')
}
function Invoke-Vigil([string[]] $Arguments) { Invoke-Step 'dotnet' (@($tool) + $Arguments) }
function Invoke-Payload { Invoke-Build; Invoke-Step 'dotnet' @('publish', 'payload/Vigild', '-c', $Configuration, '-o', 'out/payload', '--no-restore') }
function Invoke-Guest { Invoke-Payload; Invoke-Vigil @('guest') }

switch ($Verb) {
    'deps' { Invoke-Deps }
    'build' { Invoke-Build }
    'generate' {
        Invoke-Deps
        Invoke-Step 'dotnet' @('build', 'tools/Vigil.Tool', '-c', $Configuration, '--no-restore')
        Invoke-Vigil @('generate')
    }
    'check-generated' {
        & $PSCommandPath generate -Configuration $Configuration
        $changes = git status --porcelain
        if ($changes) { $changes; throw "generated files are stale or new: run 'build.ps1 generate' and commit" }
    }
    'payload' { Invoke-Payload }
    'guest' { Invoke-Guest }
    'image' {
        Invoke-Guest
        Invoke-Vigil @('esp', '--target', 'qemu', '--scenario', 'smoke', '--out', 'out/images/qemu-smoke.img')
        Invoke-Vigil @('esp', '--target', 'bochs', '--scenario', 'smoke', '--out', 'out/images/bochs-smoke.img')
    }
    'unit-test' {
        Invoke-Build
        Invoke-Step 'dotnet' @('test', $tests, '-c', $Configuration, '--no-build', '--filter', 'Category!=Emulator', '--logger', 'console;verbosity=normal')
    }
    'emulator-test' {
        Invoke-Guest
        Invoke-Step 'dotnet' @('test', $tests, '-c', $Configuration, '--no-build', '--filter', 'Category=Emulator', '--logger', 'console;verbosity=normal')
    }
    'test' {
        Invoke-Guest
        Remove-Item -ErrorAction Ignore 'out/test-results/timings.txt'
        Invoke-Step 'dotnet' @('test', $tests, '-c', $Configuration, '--no-build', '--logger', 'console;verbosity=normal')
        if (Test-Path 'out/test-results/timings.txt') { Get-Content 'out/test-results/timings.txt' }
    }
    'run' { Invoke-Guest; Invoke-Vigil @('run', '--emulator', 'qemu') }
    'run-bochs' { Invoke-Guest; Invoke-Vigil @('run', '--emulator', 'bochs') }
    'run-kvm' { Invoke-Guest; Invoke-Vigil @('run', '--emulator', 'kvm') }
    'bench' { Invoke-Guest; Invoke-Vigil @('bench', '--no-bochs') }
    'clean' {
        foreach ($dir in 'out/artifacts', 'out/efi', 'out/tests', 'out/run', 'out/images', 'out/test-results') {
            Remove-Item -Recurse -Force -ErrorAction Ignore $dir
        }
    }
}
