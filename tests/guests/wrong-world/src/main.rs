fn main() {
    println!("I am a wasi:cli command, not a call policy");
}
