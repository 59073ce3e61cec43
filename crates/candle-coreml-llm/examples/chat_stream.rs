//! Streaming chat with an ANEMLL bundle: text is printed as it is generated,
//! then the figures of the answer.
//!
//! ```sh
//! cargo run -p candle-coreml-llm --example chat_stream
//! cargo run -p candle-coreml-llm --example chat_stream -- BUNDLE_DIR "your question"
//! ```
//!
//! Without arguments it talks to the demo bundle the repository ships
//! (`assets/demo-chat`, a tiny model trained on Python's documentation).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use candle_coreml_llm::{GenerateParams, Llm, LoadOptions, Message, Prompt};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bundle = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo-chat")
    });
    let question = args
        .next()
        .unwrap_or_else(|| "What does str.split do?".to_string());

    let llm = Arc::new(Llm::load(&bundle, &LoadOptions::default())?);
    let mut session = llm.session()?;
    let params = GenerateParams {
        max_tokens: Some(128),
        ..Default::default()
    };
    let mut conversation = vec![Message::user(question.clone())];
    println!("> {question}");
    for turn in 0..2 {
        // The whole conversation goes in; the session prefills only what its
        // state does not hold yet (the new turn).
        let ids = llm.prompt_ids(&Prompt::Chat(conversation.clone()), &params)?;
        let mut generation = session.generate(ids, &params)?;
        let mut answer = String::new();
        for event in generation.by_ref() {
            let piece = event?.text;
            print!("{piece}");
            std::io::stdout().flush()?;
            answer.push_str(&piece);
        }
        let stats = generation.stats();
        println!(
            "\n[{} prompt tokens, {} cached | ttft {:?} | {:?}]",
            stats.prompt_tokens, stats.cached_tokens, stats.ttft, stats.stop_reason
        );
        if turn == 0 {
            conversation.push(Message::assistant(answer));
            let follow_up = "What does len do?";
            println!("> {follow_up}");
            conversation.push(Message::user(follow_up));
        }
    }
    Ok(())
}
